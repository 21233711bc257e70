/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_statelock.c - one worker per state_dir: the lock file is created
 * 0600 with our pid, a second taker (another open in this process, or
 * another process) is refused with the file and the holder's pid, and the
 * lock is free again once released.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tu_tmpdir.h"
#include "wk_statelock.h"

static char dir[64];

static void
setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "statelock");
}

static void
teardown(void)
{
	tu_tmpdir_remove(dir);
}

TestSuite(wk_statelock, .init = setup, .fini = teardown);

Test(wk_statelock, second_open_in_one_process_conflicts_until_released)
{
	struct wk_err err = {{0}};
	wk_statelock *a = NULL, *b = NULL;
	char state[128], want[192], text[32] = "";
	struct stat st;
	FILE *f;

	snprintf(state, sizeof(state), "%s/state", dir);
	cr_assert_eq(wk_statelock_take(state, &a, &err), 0, "%s", err.msg);
	snprintf(want, sizeof(want), "%s/state/lock", dir);
	cr_assert_str_eq(wk_statelock_path(a), want);
	cr_assert_eq(stat(want, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "lock file is %o", st.st_mode & 07777);
	cr_assert_eq(stat(state, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "state_dir is %o", st.st_mode & 07777);
	f = fopen(want, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(text, sizeof(text), f));
	fclose(f);
	cr_assert_eq(atol(text), (long)getpid());

	cr_assert_eq(wk_statelock_take(state, &b, &err), -EBUSY);
	cr_assert_null(b, "ret_lock is not written on failure");
	snprintf(want, sizeof(want), "'%s/state/lock' is held by pid %ld", dir, (long)getpid());
	cr_assert_str_eq(err.msg, want);

	a = wk_statelock_free(a);
	cr_assert_null(a);
	cr_assert_eq(wk_statelock_take(state, &b, &err), 0, "%s", err.msg);
	wk_statelock_free(b);
	cr_assert_null(wk_statelock_free(NULL));
}

Test(wk_statelock, another_process_holding_it_is_named)
{
	struct wk_err err = {{0}};
	wk_statelock *l = NULL;
	int p[2], status;
	char c;
	pid_t child;

	cr_assert_eq(pipe(p), 0);
	child = fork();
	cr_assert_neq(child, -1);
	if (child == 0) {
		close(p[0]);
		if (wk_statelock_take(dir, &l, NULL) < 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	cr_assert_eq(read(p[0], &c, 1), 1, "the child could not take the lock");
	close(p[0]);
	cr_assert_eq(wk_statelock_take(dir, &l, &err), -EBUSY);
	cr_assert_not_null(strstr(err.msg, "/lock' is held by pid "), "%s", err.msg);
	cr_assert_eq(atol(strstr(err.msg, "pid ") + 4), (long)child, "%s", err.msg);
	kill(child, SIGKILL);
	cr_assert_eq(waitpid(child, &status, 0), child);
	/* The kernel drops the lock with its holder, however it ended. */
	cr_assert_eq(wk_statelock_take(dir, &l, &err), 0, "%s", err.msg);
	wk_statelock_free(l);
}

Test(wk_statelock, a_symlink_or_a_missing_parent_is_an_error)
{
	struct wk_err err = {{0}};
	wk_statelock *l = NULL;
	char path[128];

	snprintf(path, sizeof(path), "%s/lock", dir);
	cr_assert_eq(symlink("/tmp/ferry-statelock-elsewhere", path), 0);
	cr_assert_eq(wk_statelock_take(dir, &l, &err), -ELOOP);
	cr_assert_not_null(strstr(err.msg, path), "%s", err.msg);
	cr_assert_lt(wk_statelock_take("/proc/self/no-such-dir", &l, &err), 0);
	cr_assert_not_null(strstr(err.msg, "/proc/self/no-such-dir"), "%s", err.msg);
}
