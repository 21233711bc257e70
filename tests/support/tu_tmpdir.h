/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tu_tmpdir: a private temporary directory per test (fixtures for tests
 * that touch the file system: journal, state lock, flow).  Fails the test
 * (Criterion assertion) when it cannot make or remove one.
 */
#ifndef TU_TMPDIR_H
#define TU_TMPDIR_H

#include <stddef.h>

/* Makes /tmp/ferry-<name>-XXXXXX and writes its path to buf. */
void tu_tmpdir_make(char *buf, size_t size, const char *name);

/* Removes dir and everything below it (never follows a symlink). */
void tu_tmpdir_remove(const char *dir);

#endif /* TU_TMPDIR_H */
