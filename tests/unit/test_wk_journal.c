/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_journal.c - the migration journal on a real directory: records
 * round-trip, replace atomically, disappear on remove; unreadable files are
 * set aside, bad keys refused, and a missing state_dir is created (0700,
 * records 0600); entries that are not regular files are skipped, a FIFO
 * without blocking.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tu_tmpdir.h"
#include "wk_journal.h"

static char dir[64];

static void
setup(void)
{
	tu_tmpdir_make(dir, sizeof(dir), "journal");
}

static void
teardown(void)
{
	tu_tmpdir_remove(dir);
}

static int
files_in(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' || strlen(e->d_name) > 2)
			n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

TestSuite(wk_journal, .init = setup, .fini = teardown);

Test(wk_journal, write_load_replace_remove)
{
	struct wk_err err = {{0}};
	wk_journal *j = NULL;
	json_t *recs = NULL;
	int corrupt = -1;
	char sub[128];

	snprintf(sub, sizeof(sub), "%s/state/deeper", dir);
	cr_assert_eq(wk_journal_open(sub, &j, &err), 0, "%s", err.msg);
	json_t *a = json_pack("{s:s,s:i}", "uuid", "u1", "phase", 1);
	cr_assert_eq(wk_journal_write(j, "source-u1", a, &err), 0, "%s", err.msg);
	json_object_set_new(a, "phase", json_integer(2));
	cr_assert_eq(wk_journal_write(j, "source-u1", a, &err), 0, "%s", err.msg);
	cr_assert_eq(wk_journal_write(j, "destination-u2", a, &err), 0, "%s", err.msg);

	cr_assert_eq(wk_journal_load(j, &recs, &corrupt, &err), 0, "%s", err.msg);
	cr_assert_eq(corrupt, 0);
	cr_assert_eq(json_object_size(recs), 2);
	cr_assert_eq(
	    json_integer_value(json_object_get(json_object_get(recs, "source-u1"), "phase")), 2);
	json_decref(recs);

	snprintf(sub, sizeof(sub), "%s/state/deeper/migrations", dir);
	cr_assert_eq(files_in(sub), 2, "no temporary file may be left behind");
	cr_assert_eq(wk_journal_remove(j, "source-u1", &err), 0, "%s", err.msg);
	cr_assert_eq(wk_journal_remove(j, "source-u1", &err), 0, "removing twice is fine");
	cr_assert_eq(wk_journal_load(j, &recs, &corrupt, &err), 0);
	cr_assert_eq(json_object_size(recs), 1);
	cr_assert_not_null(json_object_get(recs, "destination-u2"));
	json_decref(recs);
	json_decref(a);
	wk_journal_free(j);
}

Test(wk_journal, unreadable_record_is_set_aside_and_counted)
{
	struct wk_err err = {{0}};
	wk_journal *j = NULL;
	json_t *recs = NULL;
	int corrupt = 0;
	char path[160];
	FILE *f;

	cr_assert_eq(wk_journal_open(dir, &j, &err), 0, "%s", err.msg);
	snprintf(path, sizeof(path), "%s/migrations/source-x.json", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{\"uuid\": \"x\", trunc", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/migrations/source-y.json", dir);
	f = fopen(path, "w");
	fputs("[1, 2]", f);
	fclose(f);

	cr_assert_eq(wk_journal_load(j, &recs, &corrupt, &err), 0, "%s", err.msg);
	cr_assert_eq(corrupt, 2);
	cr_assert_eq(json_object_size(recs), 0);
	json_decref(recs);
	snprintf(path, sizeof(path), "%s/migrations/source-x.corrupt", dir);
	cr_assert_eq(access(path, F_OK), 0, "kept for the operator");
	wk_journal_free(j);
}

Test(wk_journal, bad_keys_and_unwritable_dir_are_errors)
{
	struct wk_err err = {{0}};
	wk_journal *j = NULL;
	json_t *rec = json_object();

	cr_assert_eq(wk_journal_open(dir, &j, &err), 0, "%s", err.msg);
	cr_assert_lt(wk_journal_write(j, "../escape", rec, &err), 0);
	cr_assert_not_null(strstr(err.msg, "invalid key"), "%s", err.msg);
	cr_assert_lt(wk_journal_write(j, "", rec, &err), 0);
	cr_assert_lt(wk_journal_write(j, ".hidden", rec, &err), 0);
	wk_journal_free(j);
	json_decref(rec);

	cr_assert_lt(wk_journal_open("/proc/self/no-such-dir", &j, &err), 0);
	cr_assert_not_null(strstr(err.msg, "/proc/self/no-such-dir/migrations"), "%s", err.msg);
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	cr_assert_eq(lstat(path, &st), 0, "%s", path);
	return st.st_mode & 07777;
}

struct skipped {
	int n;
	char names[4][64];
	char kinds[4][32];
};

static void
on_skip(void *userdata, const char *d, const char *name, const char *kind)
{
	struct skipped *s = userdata;

	cr_assert_not_null(strstr(d, "/migrations"));
	if (s->n < 4) {
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
		snprintf(s->kinds[s->n], sizeof(s->kinds[0]), "%s", kind);
	}
	s->n++;
}

static const char *
kind_for(const struct skipped *s, const char *name)
{
	for (int i = 0; i < s->n && i < 4; i++)
		if (strcmp(s->names[i], name) == 0)
			return s->kinds[i];
	return NULL;
}

Test(wk_journal, files_are_0600_and_directories_0700_whatever_the_umask)
{
	struct wk_err err = {{0}};
	wk_journal *j = NULL;
	json_t *rec = json_pack("{s:s}", "uuid", "u1");
	char sub[128], path[192];
	mode_t old = umask(0);

	snprintf(sub, sizeof(sub), "%s/state", dir);
	cr_assert_eq(wk_journal_open(sub, &j, &err), 0, "%s", err.msg);
	cr_assert_eq(wk_journal_write(j, "source-u1", rec, &err), 0, "%s", err.msg);
	umask(old);
	cr_assert_eq(mode_of(sub), 0700, "state_dir is %o", mode_of(sub));
	snprintf(path, sizeof(path), "%s/migrations", sub);
	cr_assert_eq(mode_of(path), 0700, "migrations/ is %o", mode_of(path));
	snprintf(path, sizeof(path), "%s/migrations/source-u1.json", sub);
	cr_assert_eq(mode_of(path), 0600, "record is %o", mode_of(path));
	wk_journal_free(j);
	json_decref(rec);
}

Test(wk_journal, an_older_wider_migrations_dir_is_narrowed)
{
	struct wk_err err = {{0}};
	wk_journal *j = NULL;
	char path[128];

	snprintf(path, sizeof(path), "%s/migrations", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(chmod(path, 0755), 0);
	cr_assert_eq(wk_journal_open(dir, &j, &err), 0, "%s", err.msg);
	cr_assert_eq(mode_of(path), 0700, "migrations/ is %o", mode_of(path));
	wk_journal_free(j);
}

Test(wk_journal, stale_temporary_file_or_symlink_does_not_block_a_write)
{
	struct wk_err err = {{0}};
	wk_journal *j = NULL;
	json_t *rec = json_pack("{s:s}", "uuid", "u1");
	char path[160], target[160];
	FILE *f;

	cr_assert_eq(wk_journal_open(dir, &j, &err), 0, "%s", err.msg);
	/* A crash between create and rename leaves the temporary file. */
	snprintf(path, sizeof(path), "%s/migrations/.source-u1.tmp", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("half", f);
	fclose(f);
	cr_assert_eq(wk_journal_write(j, "source-u1", rec, &err), 0, "%s", err.msg);
	/* A symlink planted at the temporary name is replaced, never followed. */
	snprintf(target, sizeof(target), "%s/outside", dir);
	cr_assert_eq(symlink(target, path), 0);
	cr_assert_eq(wk_journal_write(j, "source-u1", rec, &err), 0, "%s", err.msg);
	cr_assert_neq(access(target, F_OK), 0, "the symlink's target was written");
	snprintf(path, sizeof(path), "%s/migrations", dir);
	cr_assert_eq(files_in(path), 1);
	wk_journal_free(j);
	json_decref(rec);
}

Test(wk_journal, fifo_symlink_and_directory_are_skipped_without_blocking, .timeout = 10)
{
	struct wk_err err = {{0}};
	struct skipped s = {0};
	wk_journal *j = NULL;
	json_t *recs = NULL, *rec = json_pack("{s:s}", "uuid", "ok");
	char path[160], target[160];
	int corrupt = -1;
	FILE *f;

	cr_assert_eq(wk_journal_open(dir, &j, &err), 0, "%s", err.msg);
	wk_journal_set_skip_fn(j, on_skip, &s);
	cr_assert_eq(wk_journal_write(j, "source-ok", rec, &err), 0, "%s", err.msg);
	snprintf(path, sizeof(path), "%s/migrations/x.json", dir);
	cr_assert_eq(mkfifo(path, 0600), 0);
	/* A symlink to a valid record elsewhere: not trusted either. */
	snprintf(target, sizeof(target), "%s/elsewhere.json", dir);
	f = fopen(target, "w");
	cr_assert_not_null(f);
	fputs("{\"uuid\": \"evil\"}", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/migrations/link.json", dir);
	cr_assert_eq(symlink(target, path), 0);
	snprintf(path, sizeof(path), "%s/migrations/sub.json", dir);
	cr_assert_eq(mkdir(path, 0700), 0);

	cr_assert_eq(wk_journal_load(j, &recs, &corrupt, &err), 0, "%s", err.msg);
	cr_assert_eq(json_object_size(recs), 1);
	cr_assert_not_null(json_object_get(recs, "source-ok"));
	cr_assert_eq(corrupt, 0, "skipped entries are not corrupt records");
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(kind_for(&s, "x.json"), "a FIFO");
	cr_assert_str_eq(kind_for(&s, "link.json"), "a symbolic link");
	cr_assert_str_eq(kind_for(&s, "sub.json"), "a directory");
	/* Left where they are, for the operator. */
	snprintf(path, sizeof(path), "%s/migrations/x.json", dir);
	cr_assert_eq(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/migrations/link.json", dir);
	{
		struct stat st;

		cr_assert_eq(lstat(path, &st), 0);
		cr_assert(S_ISLNK(st.st_mode));
	}
	json_decref(recs);

	/* Without a callback they are skipped all the same. */
	wk_journal_set_skip_fn(j, NULL, NULL);
	cr_assert_eq(wk_journal_load(j, &recs, &corrupt, &err), 0, "%s", err.msg);
	cr_assert_eq(json_object_size(recs), 1);
	json_decref(recs);
	wk_journal_free(j);
	json_decref(rec);
}
