/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_statelock.h - one worker per state_dir.  Two workers sharing a
 * state_dir would both recover the journal and both own its migrations, so
 * the worker holds an exclusive flock(2) on <state_dir>/lock for its whole
 * life (taken before the journal is read; released by the kernel when the
 * process ends, however it ends).  The file holds the owner's pid so the
 * refusal can name it.  Main thread only; never logs.
 */
#ifndef WK_STATELOCK_H
#define WK_STATELOCK_H

#include "wk_util.h"

typedef struct wk_statelock wk_statelock;

/*
 * Creates @state_dir (0700, with missing parents) when missing, opens
 * <state_dir>/lock (0600; O_NOFOLLOW, O_CLOEXEC), takes the lock without
 * waiting and writes our pid into it.  Returns 0 and a new handle; -EBUSY
 * when another process (or another open of the file) holds it, reterr then
 * naming the file and the holder's pid, e.g.
 * "'/var/lib/ferry/lock' is held by pid 4242"; other -errno for a file that
 * cannot be created, opened or is not a regular file.
 */
int wk_statelock_take(const char *state_dir, wk_statelock **ret_lock, struct wk_err *reterr);

/* Returns "<state_dir>/lock", borrowed from @l. */
const char *wk_statelock_path(const wk_statelock *l);

/* Releases the lock (closing the file; the file itself stays, with a pid
 * that is stale by then, which is harmless).  NULL-safe; returns NULL. */
wk_statelock *wk_statelock_free(wk_statelock *l);

#endif /* WK_STATELOCK_H */
