/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_journal: one JSON file per migration, written atomically (write a
 * temporary file, fsync, rename, fsync the directory).  Records carry
 * instance names and migration targets: files are 0600 and the directories
 * 0700, and nothing in the directory is followed or opened blocking.
 */
#include "wk_journal.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUFFIX  ".json"
#define KEY_MAX 100

struct wk_journal {
	char *dir;
	int dirfd;
	wk_journal_skip_fn *skip_fn;
	void *skip_userdata;
};

int
wk_journal_open(const char *state_dir, wk_journal **ret_journal, struct wk_err *reterr)
{
	wk_journal *j;
	char path[4096];
	struct stat st;
	int r;

	if (snprintf(path, sizeof(path), "%s/migrations", state_dir) >= (int)sizeof(path))
		return wk_err_set(reterr, -ENAMETOOLONG, "state_dir: path too long");
	r = wk_mkdir_p(path);
	if (r < 0)
		return wk_err_set(reterr, r, "cannot create '%s': %s", path, strerror(-r));
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	j->dir = strdup(path);
	j->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (j->dir == NULL || j->dirfd < 0) {
		r = j->dir == NULL ? -ENOMEM : -errno;
		wk_journal_free(j);
		return wk_err_set(reterr, r, "cannot open '%s': %s", path, strerror(-r));
	}
	/* A directory left by an older version (0750) is ours alone: tighten it.
	 * Best effort: a directory we do not own stays as the operator made it. */
	if (fstat(j->dirfd, &st) == 0 && (st.st_mode & 077) != 0)
		(void)fchmod(j->dirfd, st.st_mode & 0700);
	*ret_journal = j;
	return 0;
}

wk_journal *
wk_journal_free(wk_journal *j)
{
	if (j == NULL)
		return NULL;
	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j->dir);
	free(j);
	return NULL;
}

static bool
key_ok(const char *key)
{
	size_t n = strlen(key);

	if (n == 0 || n > KEY_MAX || key[0] == '.')
		return false;
	return strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       n;
}

int
wk_journal_write(wk_journal *j, const char *key, json_t *record, struct wk_err *reterr)
{
	char name[KEY_MAX + 16], tmp[KEY_MAX + 16];
	char *text;
	size_t len, off = 0;
	int fd, r = 0;

	if (!key_ok(key))
		return wk_err_set(reterr, -EINVAL, "journal: invalid key '%s'", key);
	snprintf(name, sizeof(name), "%s" SUFFIX, key);
	snprintf(tmp, sizeof(tmp), ".%s.tmp", key);
	text = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return wk_err_set(reterr, -ENOMEM, "journal: cannot serialise '%s'", key);
	len = strlen(text);
	/* A temporary file left by a crash would fail O_EXCL: remove it (never
	 * followed, should it be a symlink), then create ours afresh. */
	if (unlinkat(j->dirfd, tmp, 0) < 0 && errno != ENOENT) {
		r = -errno;
		goto out;
	}
	fd = openat(j->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(j->dirfd, tmp, j->dirfd, name) < 0)
		r = -errno;
	if (r == 0 && fsync(j->dirfd) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(j->dirfd, tmp, 0);
out:
	free(text);
	if (r < 0)
		return wk_err_set(
		    reterr, r, "journal: cannot write '%s/%s': %s", j->dir, name, strerror(-r));
	return 0;
}

int
wk_journal_remove(wk_journal *j, const char *key, struct wk_err *reterr)
{
	char name[KEY_MAX + 16];

	if (!key_ok(key))
		return wk_err_set(reterr, -EINVAL, "journal: invalid key '%s'", key);
	snprintf(name, sizeof(name), "%s" SUFFIX, key);
	if (unlinkat(j->dirfd, name, 0) < 0 && errno != ENOENT)
		return wk_err_set(reterr, -errno, "journal: cannot remove '%s/%s': %s", j->dir,
		    name, strerror(errno));
	fsync(j->dirfd);
	return 0;
}

void
wk_journal_set_skip_fn(wk_journal *j, wk_journal_skip_fn *fn, void *userdata)
{
	j->skip_fn = fn;
	j->skip_userdata = userdata;
}

static const char *
kind_of(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	return "not a regular file";
}

/*
 * Opens @name for reading without following a symlink or blocking on a
 * FIFO (opening one for reading waits for a writer).  Returns the fd, -1
 * when @name is not a regular file (*ret_kind says what it is), or -2 when
 * it cannot be opened for another reason.
 */
static int
open_record(wk_journal *j, const char *name, const char **ret_kind)
{
	struct stat st;
	int fd;

	fd = openat(j->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP) {
			*ret_kind = "a symbolic link";
			return -1;
		}
		if (errno == ENXIO) { /* a socket */
			*ret_kind = "a socket";
			return -1;
		}
		return -2;
	}
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -2;
	}
	if (!S_ISREG(st.st_mode)) {
		*ret_kind = kind_of(st.st_mode);
		close(fd);
		return -1;
	}
	return fd;
}

int
wk_journal_load(wk_journal *j, json_t **ret_records, int *ret_corrupt, struct wk_err *reterr)
{
	json_t *records = json_object();
	struct dirent *e;
	DIR *d;
	int fd, corrupt = 0;

	if (records == NULL)
		return -ENOMEM;
	fd = dup(j->dirfd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		int r = -errno;

		if (fd >= 0)
			close(fd);
		json_decref(records);
		return wk_err_set(reterr, r, "journal: cannot list '%s': %s", j->dir, strerror(-r));
	}
	rewinddir(d);
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		char key[KEY_MAX + 1], bad[KEY_MAX + 16];
		const char *kind = NULL;
		json_error_t jerr;
		json_t *rec;
		int rfd;

		if (e->d_name[0] == '.' || n <= strlen(SUFFIX) ||
		    strcmp(e->d_name + n - strlen(SUFFIX), SUFFIX) != 0 ||
		    n - strlen(SUFFIX) > KEY_MAX)
			continue;
		memcpy(key, e->d_name, n - strlen(SUFFIX));
		key[n - strlen(SUFFIX)] = '\0';
		rfd = open_record(j, e->d_name, &kind);
		if (rfd == -1) {
			/* Not ours to rename or remove: the operator put it there. */
			if (j->skip_fn != NULL)
				j->skip_fn(j->skip_userdata, j->dir, e->d_name, kind);
			continue;
		}
		rec = NULL;
		if (rfd >= 0) {
			FILE *f = fdopen(rfd, "r");

			if (f != NULL) {
				rec = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
				fclose(f);
			} else {
				close(rfd);
			}
		}
		if (!json_is_object(rec)) {
			json_decref(rec);
			snprintf(bad, sizeof(bad), "%s.corrupt", key);
			renameat(j->dirfd, e->d_name, j->dirfd, bad);
			corrupt++;
			continue;
		}
		json_object_set_new(records, key, rec);
	}
	closedir(d);
	*ret_corrupt = corrupt;
	*ret_records = records;
	return 0;
}
