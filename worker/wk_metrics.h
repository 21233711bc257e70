/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_metrics: the worker's Prometheus endpoint (metrics.listen).
 *
 * Two halves.  The text builder (struct wk_metrics_text) writes the text
 * exposition format 0.0.4: # HELP and # TYPE per family, samples with
 * escaped label values; it is pure and is used by the main thread, the only
 * one that owns flow and bus state, to render everything when asked.  The
 * server (wk_metrics) serves the last text published from its own thread
 * (libmicrohttpd, MHD_USE_INTERNAL_POLLING_THREAD).  A scrape asks the main
 * thread for a fresh text (wk_metrics_request_fd) and waits for it at most
 * WK_METRICS_FRESH_WAIT_MS, then copies the last published buffer under a
 * mutex: it never holds the main loop, and a busy main loop delays it by
 * that bound at most.  Nothing is rendered while nobody scrapes.
 * The server is the only file that includes <microhttpd.h>; it logs its own
 * failures (wk_log is thread-safe).
 */
#ifndef WK_METRICS_H
#define WK_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wk_util.h"

/* The exposition format's Content-Type. */
#define WK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * A growing text buffer.  Zero-initialise it; wk_metrics_text_done frees it.
 * An allocation failure is sticky (oom): later writes do nothing, and the
 * caller checks it once at the end.
 */
struct wk_metrics_text {
	char *buf; /* NUL-terminated when len > 0 */
	size_t len, cap;
	bool oom;
};

struct wk_metrics_label {
	const char *name;  /* a valid label name, e.g. "instance" */
	const char *value; /* any UTF-8 text; escaped on output; NULL is written as "" */
};

/* Empties t (keeps its memory) and clears oom. */
void wk_metrics_text_reset(struct wk_metrics_text *t);

/* Frees t's buffer; t can be reused. */
void wk_metrics_text_done(struct wk_metrics_text *t);

/* Starts family name: "# HELP name help" and "# TYPE name type" (type is
 * "counter", "gauge", ...).  Backslashes and newlines in help are escaped
 * as the format wants.  Every sample of a family follows its header. */
void wk_metrics_family(
    struct wk_metrics_text *t, const char *name, const char *type, const char *help);

/* One sample line: name{l1="v1",...} value.  Label values are escaped
 * (\\, \", \n).  value is written as an integer when it is one (below
 * 2^53), as +Inf, -Inf or NaN, else with 17 significant digits. */
void wk_metrics_sample(struct wk_metrics_text *t, const char *name,
    const struct wk_metrics_label *labels, size_t n_labels, double value);

/* Appends the escaped form of label value s (no quotes). */
void wk_metrics_escape(struct wk_metrics_text *t, const char *s);

typedef struct wk_metrics wk_metrics;

/*
 * Parses metrics.listen: "A.B.C.D:port" or "[IPv6]:port", numeric
 * addresses only, port 1-65535.  Returns 0, or -EINVAL with reterr saying
 * what is wrong (without naming the option).  Pure.
 */
int wk_metrics_check_listen(const char *listen, struct wk_err *reterr);

/*
 * Starts serving GET /metrics on listen (checked as above) from the
 * server's own thread; until the first wk_metrics_publish a scrape gets
 * 503 (after waiting WK_METRICS_FRESH_WAIT_MS for one).  Other paths get 404, other methods than
 * GET and HEAD 405. Returns 0 and a new server in *ret_metrics, or -errno with reterr (e.g.
 * -EADDRINUSE).  The server's thread inherits the caller's signal mask:
 * start it after blocking the signals the main thread reads from its
 * signalfd (main.c does), or they may land on that thread.
 */
int wk_metrics_start(const char *listen, wk_metrics **ret_metrics, struct wk_err *reterr);

/* Makes t's text the one served: swaps buffers with the server, so t gets
 * the previous text's memory back for the next render (no allocation per
 * tick).  Does nothing when t->oom.  Any thread but the server's. */
void wk_metrics_publish(wk_metrics *m, struct wk_metrics_text *t);

/* How long a scrape waits for the main thread's fresh text before it
 * serves the last one published. */
#define WK_METRICS_FRESH_WAIT_MS 200

/* An eventfd, readable while a scrape waits for a fresh text: its owner
 * (the thread that renders) watches it for POLLIN, calls
 * wk_metrics_take_request, renders and publishes.  Owned by m. */
int wk_metrics_request_fd(const wk_metrics *m);

/* Clears the pending request (however many scrapes made it); true when
 * there was one.  Any thread but the server's. */
bool wk_metrics_take_request(wk_metrics *m);

/* Scrapes answered with 200 so far. */
uint64_t wk_metrics_scrapes(wk_metrics *m);

/* Stops the server (waits for its thread) and frees it.  NULL-safe;
 * returns NULL. */
wk_metrics *wk_metrics_stop(wk_metrics *m);

#endif /* WK_METRICS_H */
