/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_log.c - line formatting, journald detection and the single write(2) per
 * line.  Global state: the output fd and journald mode (guarded by log_lock),
 * the level threshold (atomic) and the per-thread request id.
 */
#include "wk_log.h"

#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* Guarded by log_lock. */
static int log_fd = 2;
static int log_journal = -1; /* -1: not yet evaluated for log_fd */

static atomic_int log_level = WK_LOG_INFO;

static _Thread_local char log_request_id[WK_LOG_REQUEST_ID_MAX + 1];

static const char *
level_name(int level)
{
	switch (level) {
	case WK_LOG_CRITICAL:
		return "CRITICAL";
	case WK_LOG_ERROR:
		return "ERROR";
	case WK_LOG_WARNING:
		return "WARNING";
	case WK_LOG_INFO:
		return "INFO";
	default:
		return "DEBUG";
	}
}

/* $JOURNAL_STREAM is "<st_dev>:<st_ino>" in decimal (systemd.exec(5)). */
static bool
fd_is_journal_stream(int fd)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int n = 0;

	if (e == NULL || *e == '\0')
		return false;
	if (sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 || e[n] != '\0')
		return false;
	if (fstat(fd, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
wk_log_set_level(int level)
{
	if (level < WK_LOG_CRITICAL)
		level = WK_LOG_CRITICAL;
	if (level > WK_LOG_DEBUG)
		level = WK_LOG_DEBUG;
	atomic_store(&log_level, level);
}

int
wk_log_get_level(void)
{
	return atomic_load(&log_level);
}

int
wk_log_parse_level(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
	    {"debug", WK_LOG_DEBUG},
	    {"info", WK_LOG_INFO},
	    {"warning", WK_LOG_WARNING},
	    {"error", WK_LOG_ERROR},
	    {"critical", WK_LOG_CRITICAL},
	};
	size_t i;

	if (s == NULL)
		return -EINVAL;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].level;
	}
	return -EINVAL;
}

void
wk_log_set_fd(int fd)
{
	pthread_mutex_lock(&log_lock);
	log_fd = fd;
	log_journal = fd_is_journal_stream(fd) ? 1 : 0;
	pthread_mutex_unlock(&log_lock);
}

int
wk_log_is_journal(void)
{
	int r;

	pthread_mutex_lock(&log_lock);
	if (log_journal < 0)
		log_journal = fd_is_journal_stream(log_fd) ? 1 : 0;
	r = log_journal;
	pthread_mutex_unlock(&log_lock);
	return r;
}

void
wk_log_set_request_id(const char *id)
{
	size_t i;

	if (id == NULL) {
		log_request_id[0] = '\0';
		return;
	}
	for (i = 0; i < WK_LOG_REQUEST_ID_MAX && id[i] != '\0'; i++) {
		char c = id[i];
		bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		            (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-';

		log_request_id[i] = keep ? c : '?';
	}
	log_request_id[i] = '\0';
}

const char *
wk_log_get_request_id(void)
{
	return log_request_id[0] != '\0' ? log_request_id : NULL;
}

/* Writes the prefix ("<date> <pid> <LEVEL> <name> [<ctx>] " or, for journald,
 * "<N><name> [<ctx>] ") into buf; returns its length (< size). */
static size_t
format_prefix(char *buf, size_t size, bool journal, int level, const char *name)
{
	char ctx[WK_LOG_REQUEST_ID_MAX + 16];
	struct timespec ts;
	struct tm tm;
	size_t n = 0;
	int r;

	if (log_request_id[0] != '\0')
		(void)snprintf(ctx, sizeof(ctx), "[%s - - - - -]", log_request_id);
	else
		(void)snprintf(ctx, sizeof(ctx), "[-]");

	if (journal) {
		r = snprintf(buf, size, "<%d>%s %s ", level, name, ctx);
	} else {
		(void)clock_gettime(CLOCK_REALTIME, &ts);
		(void)localtime_r(&ts.tv_sec, &tm);
		n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
		r = snprintf(buf + n, size - n, ".%03ld %ld %s %s %s ", ts.tv_nsec / 1000000L,
		    (long)getpid(), level_name(level), name, ctx);
	}
	if (r < 0)
		return n;
	n += (size_t)r;
	return n < size ? n : size - 1;
}

static void __attribute__((format(printf, 3, 0)))
log_vwrite(int level, const char *name, const char *fmt, va_list ap)
{
	static const char ellipsis[] = "...";
	char buf[WK_LOG_LINE_MAX];
	size_t n, room, i;
	int saved_errno = errno; /* what %m prints; the calls below may change errno */
	ssize_t w;
	int r;

	pthread_mutex_lock(&log_lock);
	if (log_journal < 0)
		log_journal = fd_is_journal_stream(log_fd) ? 1 : 0;

	n = format_prefix(buf, sizeof(buf) - 1, log_journal == 1, level, name);
	/* room for the message, keeping one byte for '\n' (vsnprintf adds a NUL there) */
	room = sizeof(buf) - n;
	errno = saved_errno;
	r = vsnprintf(buf + n, room, fmt, ap);
	if (r < 0)
		r = 0;
	if ((size_t)r >= room) {
		memcpy(
		    buf + sizeof(buf) - 1 - (sizeof(ellipsis) - 1), ellipsis, sizeof(ellipsis) - 1);
		r = (int)(room - 1);
	}
	/* One record per line: embedded line breaks would forge new lines, and
	 * other control bytes (a sender's ESC sequences) have no place in a log. */
	for (i = n; i < n + (size_t)r; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\n' || c == '\r')
			buf[i] = ' ';
		else if ((c < 0x20 && c != '\t') || c == 0x7f)
			buf[i] = '?';
	}
	n += (size_t)r;
	buf[n++] = '\n';

	do {
		w = write(log_fd, buf, n);
	} while (w < 0 && errno == EINTR);
	pthread_mutex_unlock(&log_lock);
}

void
wk_log_write(int level, const char *name, const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	if (level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, name, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

int
wk_log_write_errno(int level, const char *name, int r, const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	if (level > atomic_load(&log_level))
		return r;
	errno = r < 0 ? -r : r;
	va_start(ap, fmt);
	log_vwrite(level, name, fmt, ap);
	va_end(ap);
	errno = saved_errno;
	return r;
}
