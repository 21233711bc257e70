/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_journal.h - the durable record of every accepted migration, so a
 * restarted worker re-adopts what it was doing (DESIGN "Restart-safe").
 *
 * One JSON file per migration in <state_dir>/migrations/, named by a key the
 * caller chooses (e.g. "source-<uuid>").  A write is atomic and durable: the
 * record goes to a temporary file that is fsync'ed and renamed over the old
 * one, then the directory is fsync'ed; a crash leaves the old record or the
 * new one, never half of either.  The worker acknowledges a cast only after
 * its record is written (wk_dispatch acks after the handler returns).
 * Record files are 0600 and the directories this creates 0700; the
 * temporary file is created O_EXCL|O_NOFOLLOW, and loading never follows a
 * symlink nor opens a FIFO blocking.
 * Main thread only; never logs (errors come back in reterr, entries it
 * skips go to the wk_journal_set_skip_fn() callback).
 */
#ifndef WK_JOURNAL_H
#define WK_JOURNAL_H

#include <jansson.h>

#include "wk_util.h"

typedef struct wk_journal wk_journal;

/* Opens (creating when missing, mode 0700, as any missing parent) <state_dir>/migrations;
 * an existing migrations/ open to group or others is narrowed to 0700.  Returns 0 or
 * -errno with reterr naming the directory. */
int wk_journal_open(const char *state_dir, wk_journal **ret_journal, struct wk_err *reterr);

/* Frees; NULL-safe, returns NULL. */
wk_journal *wk_journal_free(wk_journal *j);

/* Writes record (borrowed) under key: [A-Za-z0-9._-]+, at most 100 chars. */
int wk_journal_write(wk_journal *j, const char *key, json_t *record, struct wk_err *reterr);

/* Removes key's record; a missing one is not an error. */
int wk_journal_remove(wk_journal *j, const char *key, struct wk_err *reterr);

/* Reads every record: *ret_records is a new object {key: record}.  A file
 * that is not a JSON object is renamed to <key>.corrupt, left for the
 * operator, and counted in *ret_corrupt.  An entry named <key>.json that is
 * not a regular file (symlink, FIFO, directory, socket, device) is left
 * alone and reported to the skip callback, if one is set. */
int wk_journal_load(wk_journal *j, json_t **ret_records, int *ret_corrupt, struct wk_err *reterr);

/* Called by wk_journal_load() for each entry it skips: @dir is the journal
 * directory, @name the entry, @kind what it is ("a symbolic link", "a FIFO",
 * "a directory", ...); all borrowed for the call.  The caller logs. */
typedef void wk_journal_skip_fn(
    void *userdata, const char *dir, const char *name, const char *kind);

/* Sets (fn NULL: clears) the callback for skipped entries. */
void wk_journal_set_skip_fn(wk_journal *j, wk_journal_skip_fn *fn, void *userdata);

#endif /* WK_JOURNAL_H */
