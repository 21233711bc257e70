/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_statelock: flock(LOCK_EX|LOCK_NB) on <state_dir>/lock, held on an fd
 * kept open for the worker's life.  flock locks belong to the open file
 * description, so a second open of the file conflicts even in one process
 * (which the unit test relies on), and the lock cannot leak into a child
 * through exec (O_CLOEXEC).
 */
#include "wk_statelock.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct wk_statelock {
	char *path;
	int fd;
};

/* The pid the holder wrote, or 0 when the file does not hold one (yet). */
static long
holder_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	return end != buf && (*end == '\n' || *end == '\0') && pid > 0 ? pid : 0;
}

int
wk_statelock_take(const char *state_dir, wk_statelock **ret_lock, struct wk_err *reterr)
{
	wk_autoclose int fd = -1;
	wk_autofree char *path = NULL;
	wk_statelock *l;
	struct stat st;
	char pid[32];
	long other;
	int r, n;

	if (asprintf(&path, "%s/lock", state_dir) < 0) {
		path = NULL;
		return -ENOMEM;
	}
	r = wk_mkdir_p(state_dir);
	if (r < 0)
		return wk_err_set(reterr, r, "cannot create '%s': %s", state_dir, strerror(-r));
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		return wk_err_set(reterr, r, "cannot open '%s': %s", path, strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		return wk_err_set(reterr, r, "cannot stat '%s': %s", path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode))
		return wk_err_set(reterr, -EINVAL, "'%s' is not a regular file", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		if (r != -EWOULDBLOCK)
			return wk_err_set(reterr, r, "cannot lock '%s': %s", path, strerror(-r));
		other = holder_pid(fd);
		if (other > 0)
			return wk_err_set(reterr, -EBUSY, "'%s' is held by pid %ld", path, other);
		return wk_err_set(reterr, -EBUSY, "'%s' is held by another process", path);
	}
	/* Ours now: replace whatever pid a previous owner left. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		r = errno != 0 ? -errno : -EIO;
		return wk_err_set(reterr, r, "cannot write '%s': %s", path, strerror(-r));
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	l->fd = wk_steal_fd(&fd);
	l->path = wk_steal_ptr(&path);
	*ret_lock = l;
	return 0;
}

const char *
wk_statelock_path(const wk_statelock *l)
{
	return l->path;
}

wk_statelock *
wk_statelock_free(wk_statelock *l)
{
	if (l == NULL)
		return NULL;
	if (l->fd >= 0)
		close(l->fd);
	free(l->path);
	free(l);
	return NULL;
}
