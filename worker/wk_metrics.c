/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_metrics: the exposition text builder and the HTTP endpoint (see
 * wk_metrics.h).  The main thread renders and publishes; the server's
 * thread (libmicrohttpd's internal polling thread) asks it for a fresh
 * text through an eventfd, waits for the publish on a condition variable
 * at most WK_METRICS_FRESH_WAIT_MS, then copies the last published text
 * under the mutex and answers.  Nothing else is shared.
 */
#include "wk_metrics.h"

#include <sys/eventfd.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wk_log.h"

WK_LOG_NAME("worker.metrics");

/* A scrape is one short request: a few at once are plenty, and a stuck
 * client is dropped after this long. */
#define MAX_CONNECTIONS    32
#define CONNECTION_TIMEOUT 10 /* s */

/* ---- the text builder ---- */

static bool
reserve(struct wk_metrics_text *t, size_t more)
{
	size_t cap;
	char *p;

	if (t->oom)
		return false;
	if (t->len + more + 1 <= t->cap)
		return true;
	cap = t->cap ? t->cap : 4096;
	while (cap < t->len + more + 1)
		cap *= 2;
	p = realloc(t->buf, cap);
	if (p == NULL) {
		t->oom = true;
		return false;
	}
	t->buf = p;
	t->cap = cap;
	return true;
}

static void
put(struct wk_metrics_text *t, const char *s, size_t n)
{
	if (!reserve(t, n))
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void
puts_(struct wk_metrics_text *t, const char *s)
{
	put(t, s, strlen(s));
}

void
wk_metrics_text_reset(struct wk_metrics_text *t)
{
	t->len = 0;
	t->oom = false;
	if (t->buf != NULL)
		t->buf[0] = '\0';
}

void
wk_metrics_text_done(struct wk_metrics_text *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

/* Escapes backslash and newline, and the double quote when quote is set
 * (label values; HELP text keeps its quotes, as the format says). */
static void
escape(struct wk_metrics_text *t, const char *s, bool quote)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *rep = NULL;

		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '\n')
			rep = "\\n";
		else if (*s == '"' && quote)
			rep = "\\\"";
		if (rep == NULL)
			continue;
		put(t, run, (size_t)(s - run));
		puts_(t, rep);
		run = s + 1;
	}
	put(t, run, (size_t)(s - run));
}

void
wk_metrics_escape(struct wk_metrics_text *t, const char *s)
{
	escape(t, s ? s : "", true);
}

void
wk_metrics_family(struct wk_metrics_text *t, const char *name, const char *type, const char *help)
{
	puts_(t, "# HELP ");
	puts_(t, name);
	puts_(t, " ");
	escape(t, help, false);
	puts_(t, "\n# TYPE ");
	puts_(t, name);
	puts_(t, " ");
	puts_(t, type);
	puts_(t, "\n");
}

void
wk_metrics_sample(struct wk_metrics_text *t, const char *name,
    const struct wk_metrics_label *labels, size_t n_labels, double value)
{
	char num[64];
	size_t i;

	puts_(t, name);
	if (n_labels > 0) {
		puts_(t, "{");
		for (i = 0; i < n_labels; i++) {
			if (i > 0)
				puts_(t, ",");
			puts_(t, labels[i].name);
			puts_(t, "=\"");
			wk_metrics_escape(t, labels[i].value);
			puts_(t, "\"");
		}
		puts_(t, "}");
	}
	if (isnan(value))
		snprintf(num, sizeof(num), " NaN\n");
	else if (isinf(value))
		snprintf(num, sizeof(num), " %sInf\n", value > 0 ? "+" : "-");
	else if (value == floor(value) && fabs(value) < 9007199254740992.0)
		snprintf(num, sizeof(num), " %lld\n", (long long)value);
	else
		snprintf(num, sizeof(num), " %.17g\n", value);
	puts_(t, num);
}

/* ---- the listen address ---- */

/* Fills sa from "A.B.C.D:port" or "[v6]:port". */
static int
parse_listen(
    const char *s, struct sockaddr_storage *ret_sa, socklen_t *ret_len, struct wk_err *reterr)
{
	struct sockaddr_storage sa;
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *h;
	size_t hlen;
	char *end;
	long port;
	bool v6;

	if (s == NULL || *s == '\0')
		return wk_err_set(reterr, -EINVAL, "expected \"address:port\"");
	v6 = s[0] == '[';
	if (v6) {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return wk_err_set(reterr, -EINVAL,
			    "expected \"[IPv6 address]:port\", e.g. \"[::1]:9178\"");
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return wk_err_set(reterr, -EINVAL,
			    "expected \"address:port\", e.g. \"127.0.0.1:9178\" (no port given)");
		if (memchr(s, ':', (size_t)(colon - s)) != NULL)
			return wk_err_set(reterr, -EINVAL,
			    "an IPv6 address goes in brackets, e.g. \"[::1]:9178\"");
		h = s;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return wk_err_set(reterr, -EINVAL, "expected a numeric IP address before the port");
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || port < 1 ||
	    port > 65535)
		return wk_err_set(reterr, -EINVAL, "expected a port number 1-65535 after the ':'");

	memset(&sa, 0, sizeof(sa));
	if (v6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&sa;

		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return wk_err_set(reterr, -EINVAL, "'%s' is not an IPv6 address", host);
		*ret_len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&sa;

		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return wk_err_set(reterr, -EINVAL,
			    "'%s' is not an IPv4 address (host names are not accepted)", host);
		*ret_len = sizeof(*a4);
	}
	*ret_sa = sa;
	return 0;
}

int
wk_metrics_check_listen(const char *listen, struct wk_err *reterr)
{
	struct sockaddr_storage sa;
	socklen_t len = 0;

	return parse_listen(listen, &sa, &len, reterr);
}

/* ---- the server ---- */

struct wk_metrics {
	struct MHD_Daemon *daemon;
	int request_fd;       /* eventfd: a scrape waits for a fresh text */
	pthread_mutex_t lock; /* guards the fields below */
	pthread_cond_t published;
	char *text; /* the last published text, NULL before the first */
	size_t len, cap;
	uint64_t generation; /* publishes so far */
	uint64_t scrapes;
};

/*
 * Asks the main thread for a fresh text and waits, at most
 * WK_METRICS_FRESH_WAIT_MS, for its next publish.  Called with m->lock
 * held.  A main loop that is busy (or an owner that never watches the
 * request fd) only costs the scrape that wait: it then serves the last
 * text, as before.
 */
static void
wait_fresh(wk_metrics *m)
{
	uint64_t gen = m->generation, one = 1;
	struct timespec until;

	if (write(m->request_fd, &one, sizeof(one)) < 0)
		return; /* the counter is full: a request is pending anyway */
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += (long)WK_METRICS_FRESH_WAIT_MS * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	while (m->generation == gen)
		if (pthread_cond_timedwait(&m->published, &m->lock, &until) == ETIMEDOUT)
			break;
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, char *body, size_t len, bool must_free,
    const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer(
	    len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (resp == NULL) {
		if (must_free)
			free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	        status == MHD_HTTP_OK ? WK_METRICS_CONTENT_TYPE : "text/plain; charset=utf-8") !=
	        MHD_YES ||
	    (allow != NULL &&
	        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	r = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static char not_found[] = "not found: only /metrics is served\n";
	static char not_allowed[] = "method not allowed: only GET\n";
	static char not_ready[] = "no metrics rendered yet\n";
	wk_metrics *m = cls;
	char *copy;
	size_t len;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, sizeof(not_allowed) - 1,
		    false, "GET, HEAD");
	if (strcmp(url, "/metrics") != 0)
		return reply(c, MHD_HTTP_NOT_FOUND, not_found, sizeof(not_found) - 1, false, NULL);

	pthread_mutex_lock(&m->lock);
	wait_fresh(m);
	if (m->text == NULL) {
		pthread_mutex_unlock(&m->lock);
		return reply(
		    c, MHD_HTTP_SERVICE_UNAVAILABLE, not_ready, sizeof(not_ready) - 1, false, NULL);
	}
	len = m->len;
	copy = malloc(len + 1);
	if (copy != NULL) {
		memcpy(copy, m->text, len + 1);
		m->scrapes++;
	}
	pthread_mutex_unlock(&m->lock);
	if (copy == NULL)
		return MHD_NO;
	return reply(c, MHD_HTTP_OK, copy, len, true, NULL);
}

static void __attribute__((format(printf, 2, 0))) on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;

	(void)cls;
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warning("Metrics endpoint: %s", msg);
}

/* A condition variable timed on CLOCK_MONOTONIC (wall clock steps must
 * not stretch a scrape's wait).  0 or -1 with errno. */
static int
condattr_monotonic_init(pthread_cond_t *c)
{
	pthread_condattr_t a;
	int r;

	if ((r = pthread_condattr_init(&a)) != 0) {
		errno = r;
		return -1;
	}
	r = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	if (r != 0) {
		errno = r;
		return -1;
	}
	return 0;
}

int
wk_metrics_start(const char *listen_addr, wk_metrics **ret_metrics, struct wk_err *reterr)
{
	struct sockaddr_storage sa;
	socklen_t salen = 0;
	wk_metrics *m;
	int fd, one = 1;
	int r;

	r = parse_listen(listen_addr, &sa, &salen, reterr);
	if (r < 0)
		return r;
	/* Our own socket: a failed bind says why (errno), which
	 * MHD_start_daemon would not.  The logger goes first, as MHD wants. */
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return wk_err_set(reterr, -errno, "socket: %s", strerror(errno));
	if (sa.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, 16) < 0) {
		r = -errno;
		close(fd);
		return wk_err_set(reterr, r, "cannot listen on %s: %s", listen_addr, strerror(-r));
	}

	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		close(fd);
		return -ENOMEM;
	}
	m->request_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->request_fd < 0 || condattr_monotonic_init(&m->published) < 0) {
		r = -errno;
		if (m->request_fd >= 0)
			close(m->request_fd);
		close(fd);
		free(m);
		return wk_err_set(
		    reterr, r, "cannot set up the metrics endpoint: %s", strerror(-r));
	}
	pthread_mutex_init(&m->lock, NULL);
	m->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
	                                 MHD_USE_ERROR_LOG |
	                                 (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT, MHD_OPTION_END);
	if (m->daemon == NULL) {
		r = errno > 0 ? -errno : -EIO;
		close(fd);
		close(m->request_fd);
		pthread_cond_destroy(&m->published);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return wk_err_set(reterr, r, "cannot start the HTTP server on %s", listen_addr);
	}
	*ret_metrics = m;
	return 0;
}

void
wk_metrics_publish(wk_metrics *m, struct wk_metrics_text *t)
{
	char *buf;
	size_t cap;

	if (t->oom || t->buf == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	buf = m->text;
	cap = m->cap;
	m->text = t->buf;
	m->len = t->len;
	m->cap = t->cap;
	m->generation++;
	pthread_cond_broadcast(&m->published);
	pthread_mutex_unlock(&m->lock);
	t->buf = buf;
	t->cap = cap;
	wk_metrics_text_reset(t);
}

int
wk_metrics_request_fd(const wk_metrics *m)
{
	return m->request_fd;
}

bool
wk_metrics_take_request(wk_metrics *m)
{
	uint64_t n;

	return read(m->request_fd, &n, sizeof(n)) == (ssize_t)sizeof(n);
}

uint64_t
wk_metrics_scrapes(wk_metrics *m)
{
	uint64_t n;

	pthread_mutex_lock(&m->lock);
	n = m->scrapes;
	pthread_mutex_unlock(&m->lock);
	return n;
}

wk_metrics *
wk_metrics_stop(wk_metrics *m)
{
	if (m == NULL)
		return NULL;
	/* Joins the server's thread and closes the listening socket. */
	MHD_stop_daemon(m->daemon);
	close(m->request_fd);
	pthread_cond_destroy(&m->published);
	pthread_mutex_destroy(&m->lock);
	free(m->text);
	free(m);
	return NULL;
}
