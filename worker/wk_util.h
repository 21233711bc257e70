/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_util.h - small helpers shared by every worker module (STYLE.md 3.7, 3.10):
 * scope-cleanup attributes and steal helpers, the error-detail buffer
 * struct wk_err, and a monotonic millisecond clock.
 *
 * Header only; every helper is thread-safe, never logs and never allocates.
 */
#ifndef WK_UTIL_H
#define WK_UTIL_H

#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Runs fn(&var) when var goes out of scope.  Initialise var at its declaration
 * and never mix with goto in the same function (STYLE.md 3.10). */
#define WK_CLEANUP(fn) __attribute__((cleanup(fn)))

/* Defines "static inline void <fn>p(type *p)", which calls fn(*p) when *p is
 * not NULL, for use as WK_CLEANUP(<fn>p).  fn may return void or a pointer
 * (the result is ignored), e.g. WK_DEFINE_CLEANUP(struct wk_conf *, wk_conf_free)
 * gives wk_conf_freep. */
#define WK_DEFINE_CLEANUP(type, fn)       \
	static inline void fn##p(type *p) \
	{                                 \
		if (*p != NULL)           \
			(void)fn(*p);     \
	}

/* Cleanup function behind wk_autofree: frees *(void **)p. */
static inline void
wk_freep(void *p)
{
	free(*(void **)p);
}

/* Cleanup function behind wk_autoclose: closes *fd when >= 0, keeping errno. */
static inline void
wk_closep(int *fd)
{
	int saved_errno;

	if (*fd >= 0) {
		saved_errno = errno;
		(void)close(*fd);
		*fd = -1;
		errno = saved_errno;
	}
}

/* "wk_autofree char *s = NULL;" frees s at scope exit. */
#define wk_autofree WK_CLEANUP(wk_freep)
/* "wk_autoclose int fd = -1;" closes fd at scope exit when it is >= 0. */
#define wk_autoclose WK_CLEANUP(wk_closep)

/* Returns the pointer stored at pp (a pointer to any object pointer) and sets
 * that variable to NULL, so an enclosing cleanup becomes a no-op.  Ownership
 * moves to the caller. */
static inline void *
wk_steal_ptr(void *pp)
{
	void **p = pp;
	void *v = *p;

	*p = NULL;
	return v;
}

/* Returns *fd and sets it to -1.  Ownership of the descriptor moves to the caller. */
static inline int
wk_steal_fd(int *fd)
{
	int v = *fd;

	*fd = -1;
	return v;
}

/* Failure detail, written only on failure; every function taking a
 * struct wk_err *reterr accepts NULL. */
struct wk_err {
	char msg[256];
};

/* Formats into e->msg when e is non-NULL (truncating to fit) and returns r,
 * so callers write "return wk_err_set(reterr, -EINVAL, "...", ...);".
 * errno is preserved. */
static inline int __attribute__((format(printf, 3, 4)))
wk_err_set(struct wk_err *e, int r, const char *fmt, ...)
{
	va_list ap;
	int saved_errno = errno;

	if (e != NULL) {
		va_start(ap, fmt);
		(void)vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	errno = saved_errno;
	return r;
}

/* Milliseconds on CLOCK_MONOTONIC (unaffected by wall-clock changes). */
static inline uint64_t
wk_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The absolute time ms from now on clock (for pthread_cond_timedwait: the
 * clock its condition variable was made with). */
static inline struct timespec
wk_timespec_in(clockid_t clock, unsigned ms)
{
	struct timespec ts;

	(void)clock_gettime(clock, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Creates path and its missing parents, mode 0700 (state directories hold
 * request contexts).  An existing directory is fine.  0 or -errno. */
static inline int
wk_mkdir_p(const char *path)
{
	char buf[4096];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

#endif /* WK_UTIL_H */
