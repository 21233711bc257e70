/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_log.h - the worker's logger (STYLE.md 3.8): oslo.log-shaped lines,
 *
 *   2025-03-01 12:00:00.123 4242 INFO worker.migrate [req-6f1c... - - - - -] message
 *
 * or, when $JOURNAL_STREAM names the output fd's device:inode (running under
 * systemd with stderr connected to journald), "<6>worker.migrate [...] message".
 * Every line is formatted into one buffer (at most WK_LOG_LINE_MAX bytes,
 * truncated with "...") and written with one write(2) under a mutex, so lines
 * from different threads never interleave.  Callable from any thread.  The
 * request id is thread-local.  Logging never changes errno.
 *
 * Each .c file that logs names its logger once, at file scope:
 *
 *   WK_LOG_NAME("worker.migrate");
 *
 * which defines a file-local (static) name, so any number of files in one
 * library may each declare their own.
 */
#ifndef WK_LOG_H
#define WK_LOG_H

/* Levels are syslog priorities, so the journald prefix is "<level>". */
enum {
	WK_LOG_CRITICAL = 2,
	WK_LOG_ERROR = 3,
	WK_LOG_WARNING = 4,
	WK_LOG_INFO = 6,
	WK_LOG_DEBUG = 7,
};

/* Longest line written, newline included. */
#define WK_LOG_LINE_MAX 2048

/* Longest request id kept (oslo's "req-<uuid>" is 40); longer ids are truncated. */
#define WK_LOG_REQUEST_ID_MAX 64

/* Declares this file's logger name (a string literal), once per .c file. */
#define WK_LOG_NAME(name) static const char wk_log_name[] __attribute__((unused)) = name

/*
 * Writes one line at @level for logger @name.  Nothing is formatted when
 * @level is above the current threshold.  Use the log_* macros below.
 */
void wk_log_write(int level, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * As wk_log_write(), with errno set to -@r (or @r when @r is positive) while
 * formatting, so "%m" prints strerror of @r.  Returns @r unchanged.
 */
int wk_log_write_errno(int level, const char *name, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * The level macros.  They are wrapped in __extension__ so that glibc's "%m"
 * passes -std=c11 -Wpedantic; every other format check still applies.
 */
#define log_debug(...)    (__extension__ wk_log_write(WK_LOG_DEBUG, wk_log_name, __VA_ARGS__))
#define log_info(...)     (__extension__ wk_log_write(WK_LOG_INFO, wk_log_name, __VA_ARGS__))
#define log_warning(...)  (__extension__ wk_log_write(WK_LOG_WARNING, wk_log_name, __VA_ARGS__))
#define log_error(...)    (__extension__ wk_log_write(WK_LOG_ERROR, wk_log_name, __VA_ARGS__))
#define log_critical(...) (__extension__ wk_log_write(WK_LOG_CRITICAL, wk_log_name, __VA_ARGS__))

/* "return log_error_errno(r, "Cannot open '%s': %m", path);" logs and returns r. */
#define log_debug_errno(r, ...) \
	(__extension__ wk_log_write_errno(WK_LOG_DEBUG, wk_log_name, (r), __VA_ARGS__))
#define log_info_errno(r, ...) \
	(__extension__ wk_log_write_errno(WK_LOG_INFO, wk_log_name, (r), __VA_ARGS__))
#define log_warning_errno(r, ...) \
	(__extension__ wk_log_write_errno(WK_LOG_WARNING, wk_log_name, (r), __VA_ARGS__))
#define log_error_errno(r, ...) \
	(__extension__ wk_log_write_errno(WK_LOG_ERROR, wk_log_name, (r), __VA_ARGS__))
#define log_critical_errno(r, ...) \
	(__extension__ wk_log_write_errno(WK_LOG_CRITICAL, wk_log_name, (r), __VA_ARGS__))

/* Sets the threshold: lines with a level numerically above it are dropped.
 * Default WK_LOG_INFO.  Values outside WK_LOG_CRITICAL..WK_LOG_DEBUG are clamped. */
void wk_log_set_level(int level);

/* Returns the current threshold. */
int wk_log_get_level(void);

/* Maps "debug", "info", "warning", "error", "critical" (case-insensitive) to
 * a WK_LOG_* level.  Returns the level or -EINVAL (also for NULL). */
int wk_log_parse_level(const char *s);

/*
 * Sends lines to @fd (borrowed: never closed by the logger; default 2).
 * Re-evaluates journald mode: it is on when $JOURNAL_STREAM is "<dev>:<ino>"
 * of @fd.  Tests use this with a pipe or memfd.
 */
void wk_log_set_fd(int fd);

/* Returns whether lines currently use the journald "<N>" form. */
int wk_log_is_journal(void);

/*
 * Sets the calling thread's request id (copied; NULL clears it, giving "[-]").
 * The id comes from the wire and is shown inside the context bracket, so
 * every byte outside [A-Za-z0-9._:-] is replaced with '?' (a space or ']'
 * would forge the context, a newline a whole line) and it is cut at
 * WK_LOG_REQUEST_ID_MAX bytes.
 */
void wk_log_set_request_id(const char *id);

/* Returns the calling thread's request id, borrowed and valid until the next
 * wk_log_set_request_id() on this thread, or NULL when none is set. */
const char *wk_log_get_request_id(void);

#endif /* WK_LOG_H */
