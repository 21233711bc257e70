/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_journal.c - the migration journal on a real directory: records
 * round-trip, replace atomically, disappear on remove; unreadable files are
 * set aside, bad keys refused, and a missing state_dir is created.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "wk_journal.h"

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ferry-journal-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
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
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(recs, "source-u1"),
			 "phase")),
	    2);
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
