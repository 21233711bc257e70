/* SPDX-License-Identifier: Apache-2.0 */
/* tu_tmpdir: per-test temporary directories (see tu_tmpdir.h). */
#include "tu_tmpdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include <criterion/criterion.h>

void
tu_tmpdir_make(char *buf, size_t size, const char *name)
{
	cr_assert_lt((size_t)snprintf(buf, size, "/tmp/ferry-%s-XXXXXX", name), size);
	cr_assert_not_null(mkdtemp(buf), "mkdtemp %s", buf);
}

static int
remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

void
tu_tmpdir_remove(const char *dir)
{
	cr_assert_eq(nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0, "remove %s", dir);
}
