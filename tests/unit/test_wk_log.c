/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_wk_log.c - wk_log line shapes (oslo.log and journald), request-id
 * context, levels, %m in the _errno variants, truncation and whole lines
 * under concurrent writers.  Output is captured in a memfd.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "wk_log.h"

WK_LOG_NAME("test.log");

static int out_fd = -1;

static void
setup(void)
{
	unsetenv("JOURNAL_STREAM");
	out_fd = memfd_create("wk_log", MFD_CLOEXEC);
	cr_assert_geq(out_fd, 0);
	wk_log_set_fd(out_fd);
	wk_log_set_level(WK_LOG_INFO);
	wk_log_set_request_id(NULL);
}

static void
teardown(void)
{
	wk_log_set_fd(2);
	close(out_fd);
}

/* Everything written so far, NUL-terminated; caller frees. */
static char *
captured(size_t *ret_len)
{
	struct stat st;
	char *buf;
	ssize_t n;

	cr_assert_eq(fstat(out_fd, &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	cr_assert_not_null(buf);
	n = pread(out_fd, buf, (size_t)st.st_size, 0);
	cr_assert_eq(n, st.st_size);
	if (ret_len != NULL)
		*ret_len = (size_t)n;
	return buf;
}

static void
assert_matches(const char *s, const char *pattern)
{
	regex_t re;

	cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0, "bad regex %s", pattern);
	cr_assert_eq(regexec(&re, s, 0, NULL, 0), 0, "'%s' does not match '%s'", s, pattern);
	regfree(&re);
}

TestSuite(wk_log, .init = setup, .fini = teardown);

Test(wk_log, line_has_oslo_log_default_shape)
{
	char pattern[256];
	char *out;

	log_info("Migration of '%s' to '%s' started", "a1b2", "host-2");
	out = captured(NULL);
	snprintf(pattern, sizeof(pattern),
	    "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} %ld INFO test\\.log "
	    "\\[-\\] Migration of 'a1b2' to 'host-2' started\n$",
	    (long)getpid());
	assert_matches(out, pattern);
	free(out);
}

Test(wk_log, level_names_match_oslo)
{
	char *out;

	wk_log_set_level(WK_LOG_DEBUG);
	log_debug("d");
	log_info("i");
	log_warning("w");
	log_error("e");
	log_critical("c");
	out = captured(NULL);
	assert_matches(out, "^[^\n]* DEBUG test\\.log \\[-\\] d\n"
	                    "[^\n]* INFO test\\.log \\[-\\] i\n"
	                    "[^\n]* WARNING test\\.log \\[-\\] w\n"
	                    "[^\n]* ERROR test\\.log \\[-\\] e\n"
	                    "[^\n]* CRITICAL test\\.log \\[-\\] c\n$");
	free(out);
}

Test(wk_log, request_id_fills_the_context_bracket)
{
	char *out;

	cr_assert_null(wk_log_get_request_id());
	wk_log_set_request_id("req-6f1c4f3e-5a7b-4c1d-9e2f-0123456789ab");
	cr_assert_str_eq(wk_log_get_request_id(), "req-6f1c4f3e-5a7b-4c1d-9e2f-0123456789ab");
	log_info("with");
	wk_log_set_request_id(NULL);
	cr_assert_null(wk_log_get_request_id());
	log_info("without");
	out = captured(NULL);
	assert_matches(out, "^[^\n]* INFO test\\.log "
	                    "\\[req-6f1c4f3e-5a7b-4c1d-9e2f-0123456789ab - - - - -\\] with\n"
	                    "[^\n]* INFO test\\.log \\[-\\] without\n$");
	free(out);
}

Test(wk_log, request_id_cannot_forge_the_context_or_a_line)
{
	char long_id[200];
	char *out;

	wk_log_set_request_id("req-1 - - - - -] forged [req-2");
	cr_assert_str_eq(wk_log_get_request_id(), "req-1?-?-?-?-?-??forged??req-2");
	log_info("one");
	wk_log_set_request_id("a\nb\tc\xc3\xa9"
	                      "d/e_f.g:h");
	cr_assert_str_eq(wk_log_get_request_id(), "a?b?c??d?e_f.g:h");
	log_info("two");
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	wk_log_set_request_id(long_id);
	cr_assert_eq(strlen(wk_log_get_request_id()), WK_LOG_REQUEST_ID_MAX);
	cr_assert_leq(WK_LOG_REQUEST_ID_MAX, 64);
	wk_log_set_request_id(NULL);
	out = captured(NULL);
	assert_matches(out,
	    "^[^\n]* INFO test\\.log \\[req-1\\?-\\?-\\?-\\?-\\?-\\?\\?forged\\?\\?req-2 - - - - "
	    "-\\] one\n"
	    "[^\n]* INFO test\\.log \\[a\\?b\\?c\\?\\?d\\?e_f\\.g:h - - - - -\\] two\n$");
	free(out);
}

Test(wk_log, request_id_is_copied)
{
	char id[] = "req-1";

	wk_log_set_request_id(id);
	id[4] = '9';
	cr_assert_str_eq(wk_log_get_request_id(), "req-1");
}

static int had_id;

static void *
other_thread(void *arg)
{
	(void)arg;
	return wk_log_get_request_id() == NULL ? NULL : (void *)&had_id;
}

Test(wk_log, request_id_is_per_thread)
{
	pthread_t t;
	void *seen = (void *)1;

	wk_log_set_request_id("req-main");
	cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
	cr_assert_eq(pthread_join(t, &seen), 0);
	cr_assert_null(seen);
	cr_assert_str_eq(wk_log_get_request_id(), "req-main");
}

Test(wk_log, lines_below_the_level_are_dropped)
{
	char *out;

	cr_assert_eq(wk_log_get_level(), WK_LOG_INFO);
	log_debug("hidden");
	wk_log_set_level(WK_LOG_ERROR);
	log_warning("hidden too");
	log_error("shown");
	out = captured(NULL);
	assert_matches(out, "^[^\n]* ERROR test\\.log \\[-\\] shown\n$");
	free(out);
}

Test(wk_log, parse_level)
{
	cr_assert_eq(wk_log_parse_level("debug"), WK_LOG_DEBUG);
	cr_assert_eq(wk_log_parse_level("info"), WK_LOG_INFO);
	cr_assert_eq(wk_log_parse_level("WARNING"), WK_LOG_WARNING);
	cr_assert_eq(wk_log_parse_level("error"), WK_LOG_ERROR);
	cr_assert_eq(wk_log_parse_level("Critical"), WK_LOG_CRITICAL);
	cr_assert_eq(wk_log_parse_level("warn"), -EINVAL);
	cr_assert_eq(wk_log_parse_level(""), -EINVAL);
	cr_assert_eq(wk_log_parse_level(NULL), -EINVAL);
}

Test(wk_log, errno_variant_formats_m_and_returns_r)
{
	char *out;
	int r;

	errno = EAGAIN;
	r = log_error_errno(-ENOENT, "Cannot open '%s': %m", "/x");
	cr_assert_eq(r, -ENOENT);
	cr_assert_eq(errno, EAGAIN, "errno clobbered");
	/* below the level: nothing written, r still returned */
	cr_assert_eq(log_debug_errno(-EIO, "quiet: %m"), -EIO);
	out = captured(NULL);
	assert_matches(out, "^[^\n]* ERROR test\\.log \\[-\\] Cannot open '/x': No such file or "
	                    "directory\n$");
	free(out);
}

Test(wk_log, plain_variants_keep_errno)
{
	errno = ETIMEDOUT;
	log_info("x %d", 1);
	cr_assert_eq(errno, ETIMEDOUT);
}

Test(wk_log, long_lines_are_truncated_with_ellipsis)
{
	char *msg = malloc(5000);
	size_t len;
	char *out;

	cr_assert_not_null(msg);
	memset(msg, 'x', 4999);
	msg[4999] = '\0';
	log_warning("%s", msg);
	log_info("next");
	out = captured(&len);
	cr_assert_eq(out[WK_LOG_LINE_MAX - 1], '\n');
	cr_assert_eq(memcmp(out + WK_LOG_LINE_MAX - 4, "...", 3), 0);
	cr_assert_eq(out[WK_LOG_LINE_MAX - 5], 'x');
	cr_assert_eq(memchr(out, '\n', WK_LOG_LINE_MAX - 1), NULL);
	assert_matches(out + WK_LOG_LINE_MAX, "^[^\n]* INFO test\\.log \\[-\\] next\n$");
	free(out);
	free(msg);
}

Test(wk_log, line_breaks_in_messages_cannot_forge_lines)
{
	char *out;

	log_info("a\nb\rc");
	out = captured(NULL);
	assert_matches(out, "^[^\n]* INFO test\\.log \\[-\\] a b c\n$");
	free(out);
}

Test(wk_log, control_bytes_from_senders_are_neutralised)
{
	char *out;

	log_info("method '%s'", "x\x1b[31mred\x7f\ttab");
	out = captured(NULL);
	assert_matches(out, "^[^\n]* INFO test\\.log \\[-\\] method 'x\\?\\[31mred\\?\ttab'\n$");
	free(out);
}

Test(wk_log, journald_mode_when_journal_stream_matches_the_fd)
{
	char env[64];
	struct stat st;
	char *out;

	cr_assert_eq(fstat(out_fd, &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	wk_log_set_fd(out_fd);
	cr_assert(wk_log_is_journal());
	wk_log_set_level(WK_LOG_DEBUG);
	wk_log_set_request_id("req-7");
	log_info("hello %d", 5);
	log_error("bad");
	log_debug("dbg");
	log_warning("warn");
	log_critical("crit");
	out = captured(NULL);
	cr_assert_str_eq(out, "<6>test.log [req-7 - - - - -] hello 5\n"
	                      "<3>test.log [req-7 - - - - -] bad\n"
	                      "<7>test.log [req-7 - - - - -] dbg\n"
	                      "<4>test.log [req-7 - - - - -] warn\n"
	                      "<2>test.log [req-7 - - - - -] crit\n");
	free(out);
}

Test(wk_log, no_journald_mode_for_another_inode)
{
	char env[64];
	struct stat st;
	char *out;

	cr_assert_eq(fstat(out_fd, &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", env, 1);
	wk_log_set_fd(out_fd);
	cr_assert_not(wk_log_is_journal());
	setenv("JOURNAL_STREAM", "garbage", 1);
	wk_log_set_fd(out_fd);
	cr_assert_not(wk_log_is_journal());
	log_info("plain");
	out = captured(NULL);
	assert_matches(out, "^[0-9]{4}-[^\n]* INFO test\\.log \\[-\\] plain\n$");
	free(out);
}

#define N_THREADS 4
#define N_LINES   300

static void *
writer(void *arg)
{
	char id[32];
	char pad[600];
	int i;

	snprintf(id, sizeof(id), "req-t%d", (int)(long)arg);
	wk_log_set_request_id(id);
	memset(pad, 'a' + (int)(long)arg, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (i = 0; i < N_LINES; i++)
		log_info("line %d %s", i, pad);
	return NULL;
}

Test(wk_log, concurrent_lines_never_interleave)
{
	pthread_t t[N_THREADS];
	char *out, *line, *save = NULL;
	int counts[N_THREADS] = {0};
	regex_t re;
	long i;
	int n = 0;

	for (i = 0; i < N_THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, writer, (void *)i), 0);
	for (i = 0; i < N_THREADS; i++)
		pthread_join(t[i], NULL);

	cr_assert_eq(
	    regcomp(&re,
	        "^[0-9-]{10} [0-9:.]{12} [0-9]+ INFO test\\.log \\[req-t([0-3]) - - - - -\\] "
	        "line [0-9]+ (a{599}|b{599}|c{599}|d{599})$",
	        REG_EXTENDED),
	    0);
	out = captured(NULL);
	for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[3];

		cr_assert_eq(regexec(&re, line, 3, m, 0), 0, "mangled line '%.80s...'", line);
		/* the request id and the padding letter come from the same thread */
		cr_assert_eq(line[m[1].rm_so] - '0', line[m[2].rm_so] - 'a');
		counts[line[m[1].rm_so] - '0']++;
		n++;
	}
	cr_assert_eq(n, N_THREADS * N_LINES);
	for (i = 0; i < N_THREADS; i++)
		cr_assert_eq(counts[i], N_LINES);
	regfree(&re);
	free(out);
}
