/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_amqp: rabbitmq-c adapter.  One connection, channel 1 consumes,
 * channel 2 publishes with confirms.  Frames are read without blocking and
 * assembled here, so the owner's poll loop never stalls on the broker.
 * AMQP status codes become -errno at this edge and nowhere else.
 */
#include "rpc_amqp.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "rpc_msg.h"
#include "rpc_uuid.h"

#define CH_CONSUME         1
#define CH_PUBLISH         2
#define MAX_TOPICS         4
#define FRAMES_PER_PROCESS 512
#define NOTIFY_PRIORITIES  3

/* One message waiting for a broker confirm (seq > 0) or to be sent (seq 0). */
struct outbox_entry {
	struct outbox_entry *next;
	uint64_t seq;
	char *exchange;
	char *routing_key;
	char *body;
	size_t len;
	bool mandatory;
	int expiration_ms;
};

/* A delivery being assembled from method, header and body frames. */
struct inflight {
	bool active;
	enum rpc_delivery_kind kind;
	uint64_t tag;
	bool redelivered;
	bool compressed;
	bool oversized; /* body frames are skipped, not stored */
	char routing_key[256];
	char *body;
	size_t len, want;
};

struct rpc_amqp {
	struct rpc_url *url;
	size_t next_host;
	char *exchange;
	char *topics[MAX_TOPICS];
	size_t n_topics;
	char *server;
	char *connection_name;
	char *notify_topic;
	struct rpc_amqp_options o; /* flags only; string fields unused after new */
	int connect_timeout_ms;
	char reply_queue[64];
	char broker[300]; /* host:port of the connection, or of the last one */
	char fanout_queues[MAX_TOPICS][128];

	amqp_connection_state_t conn;
	bool connected;
	uint64_t next_seq;
	struct inflight in;

	struct outbox_entry *out_head, *out_tail;
	size_t out_len, out_max;
	struct rpc_amqp_stats stats;
};

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* Replaces *dst by a copy of src; false when out of memory (dst unchanged). */
static bool
replace_str(char **dst, const char *src)
{
	char *c = strdup(src);

	if (c == NULL)
		return false;
	free(*dst);
	*dst = c;
	return true;
}

static int
status_to_errno(int status)
{
	switch (status) {
	case AMQP_STATUS_NO_MEMORY:
		return -ENOMEM;
	case AMQP_STATUS_TIMEOUT:
	case AMQP_STATUS_HEARTBEAT_TIMEOUT:
		return -ETIMEDOUT;
	case AMQP_STATUS_CONNECTION_CLOSED:
	case AMQP_STATUS_SOCKET_ERROR:
	case AMQP_STATUS_SOCKET_CLOSED:
		return -ECONNRESET;
	case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED:
		return -EHOSTUNREACH;
	case AMQP_STATUS_SSL_ERROR:
	case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
	case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
	case AMQP_STATUS_SSL_CONNECTION_FAILED:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* Turns a synchronous call's reply into -errno plus a readable reason. */
static int
reply_check(amqp_rpc_reply_t r, const char *what, struct rpc_err *reterr)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return 0;
	case AMQP_RESPONSE_NONE:
		return rpc_err_set(reterr, -EPROTO, "%s: missing reply", what);
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		return rpc_err_set(reterr, status_to_errno(r.library_error), "%s: %s", what,
		    amqp_error_string2(r.library_error));
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *c = r.reply.decoded;

			return rpc_err_set(reterr, -ECONNREFUSED, "%s: connection closed: %u %.*s",
			    what, c->reply_code, (int)c->reply_text.len,
			    (const char *)c->reply_text.bytes);
		}
		if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *c = r.reply.decoded;

			return rpc_err_set(reterr, -EPROTO, "%s: channel closed: %u %.*s", what,
			    c->reply_code, (int)c->reply_text.len,
			    (const char *)c->reply_text.bytes);
		}
		return rpc_err_set(
		    reterr, -EPROTO, "%s: unexpected method 0x%08x", what, r.reply.id);
	}
	return rpc_err_set(reterr, -EIO, "%s: unknown reply type", what);
}

int
rpc_amqp_new(const struct rpc_amqp_options *opts, rpc_amqp **ret_amqp)
{
	rpc_amqp *a;
	struct rpc_url *u;

	if (opts == NULL || opts->url == NULL || opts->exchange == NULL || opts->server == NULL)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->o = *opts;
	a->o.url = NULL;
	a->o.ssl_ca_file = a->o.ssl_cert_file = a->o.ssl_key_file = NULL;
	a->out_max = opts->outbox_max > 0 ? opts->outbox_max : 4096;
	a->exchange = strdup(opts->exchange);
	a->server = strdup(opts->server);
	a->connection_name = strdup(opts->connection_name ? opts->connection_name : "ferry-worker");
	a->notify_topic =
	    strdup(opts->notify_topic ? opts->notify_topic : "versioned_notifications");
	u = calloc(1, sizeof(*u));
	a->url = u;
	if (a->exchange == NULL || a->server == NULL || a->connection_name == NULL ||
	    a->notify_topic == NULL || u == NULL)
		goto oom;
	u->n_hosts = opts->url->n_hosts;
	u->hosts = calloc(u->n_hosts, sizeof(*u->hosts));
	if (u->hosts == NULL)
		goto oom;
	for (size_t i = 0; i < u->n_hosts; i++) {
		u->hosts[i].user = dup_or_null(opts->url->hosts[i].user);
		u->hosts[i].password = dup_or_null(opts->url->hosts[i].password);
		u->hosts[i].host = dup_or_null(opts->url->hosts[i].host);
		u->hosts[i].port = opts->url->hosts[i].port;
		if (u->hosts[i].host == NULL)
			goto oom;
	}
	u->vhost = dup_or_null(opts->url->vhost);
	u->ssl = opts->url->ssl;
	u->ssl_ca_file = dup_or_null(opts->url->ssl_ca_file);
	u->ssl_cert_file = dup_or_null(opts->url->ssl_cert_file);
	u->ssl_key_file = dup_or_null(opts->url->ssl_key_file);
	/* [oslo_messaging_rabbit] ssl* options override the URL's query. */
	u->ssl = u->ssl || opts->ssl;
	if (opts->ssl_ca_file != NULL && !replace_str(&u->ssl_ca_file, opts->ssl_ca_file))
		goto oom;
	if (opts->ssl_cert_file != NULL && !replace_str(&u->ssl_cert_file, opts->ssl_cert_file))
		goto oom;
	if (opts->ssl_key_file != NULL && !replace_str(&u->ssl_key_file, opts->ssl_key_file))
		goto oom;
	a->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
	for (size_t i = 0; i < MAX_TOPICS && opts->topics[i] != NULL; i++) {
		if (opts->topics[i][0] == '\0')
			continue;
		a->topics[a->n_topics] = strdup(opts->topics[i]);
		if (a->topics[a->n_topics] == NULL)
			goto oom;
		a->n_topics++;
	}
	snprintf(a->reply_queue, sizeof(a->reply_queue), "reply_");
	rpc_uuid4_hex(a->reply_queue + strlen("reply_"));
	for (size_t i = 0; i < a->n_topics; i++) {
		char hex[RPC_UUID_HEX_LEN];

		rpc_uuid4_hex(hex);
		snprintf(a->fanout_queues[i], sizeof(a->fanout_queues[i]), "%s_fanout_%s",
		    a->topics[i], hex);
	}
	*ret_amqp = a;
	return 0;
oom:
	rpc_amqp_free(a);
	return -ENOMEM;
}

static void
outbox_entry_free(struct outbox_entry *e)
{
	if (e == NULL)
		return;
	free(e->exchange);
	free(e->routing_key);
	free(e->body);
	free(e);
}

static void
drop_connection(rpc_amqp *a)
{
	if (a->conn != NULL) {
		amqp_destroy_connection(a->conn);
		a->conn = NULL;
	}
	if (a->connected)
		a->stats.disconnects++;
	a->connected = false;
	free(a->in.body);
	memset(&a->in, 0, sizeof(a->in));
}

rpc_amqp *
rpc_amqp_free(rpc_amqp *a)
{
	if (a == NULL)
		return NULL;
	if (a->connected) {
		/* As oslo on a clean stop: cancel, delete our transient queues, close. */
		amqp_channel_close(a->conn, CH_PUBLISH, AMQP_REPLY_SUCCESS);
		for (size_t i = 0; i < a->n_topics; i++)
			amqp_queue_delete(
			    a->conn, CH_CONSUME, amqp_cstring_bytes(a->fanout_queues[i]), 0, 0);
		amqp_channel_close(a->conn, CH_CONSUME, AMQP_REPLY_SUCCESS);
		amqp_connection_close(a->conn, AMQP_REPLY_SUCCESS);
	}
	drop_connection(a);
	while (a->out_head != NULL) {
		struct outbox_entry *e = a->out_head;

		a->out_head = e->next;
		outbox_entry_free(e);
	}
	rpc_url_free(a->url);
	free(a->exchange);
	free(a->server);
	free(a->connection_name);
	free(a->notify_topic);
	for (size_t i = 0; i < a->n_topics; i++)
		free(a->topics[i]);
	free(a);
	return NULL;
}

/* Arguments oslo puts on the long-lived topic queues (and notification queues). */
static size_t
topic_queue_args(const rpc_amqp *a, amqp_table_entry_t *e)
{
	size_t n = 0;

	if (a->o.ha) {
		e[n].key = amqp_cstring_bytes("x-ha-policy");
		e[n].value.kind = AMQP_FIELD_KIND_UTF8;
		e[n].value.value.bytes = amqp_cstring_bytes("all");
		n++;
	}
	if (a->o.quorum) {
		e[n].key = amqp_cstring_bytes("x-queue-type");
		e[n].value.kind = AMQP_FIELD_KIND_UTF8;
		e[n].value.value.bytes = amqp_cstring_bytes("quorum");
		n++;
		if (a->o.quorum_delivery_limit > 0) {
			e[n].key = amqp_cstring_bytes("x-delivery-limit");
			e[n].value.kind = AMQP_FIELD_KIND_I32;
			e[n].value.value.i32 = a->o.quorum_delivery_limit;
			n++;
		}
		if (a->o.quorum_max_memory_length > 0) {
			e[n].key = amqp_cstring_bytes("x-max-in-memory-length");
			e[n].value.kind = AMQP_FIELD_KIND_I32;
			e[n].value.value.i32 = a->o.quorum_max_memory_length;
			n++;
		}
		if (a->o.quorum_max_memory_bytes > 0) {
			e[n].key = amqp_cstring_bytes("x-max-in-memory-bytes");
			e[n].value.kind = AMQP_FIELD_KIND_I32;
			e[n].value.value.i32 = a->o.quorum_max_memory_bytes;
			n++;
		}
	}
	return n;
}

/* Arguments of the fanout and reply queues: x-expires (+ ha). */
static size_t
transient_queue_args(const rpc_amqp *a, amqp_table_entry_t *e)
{
	size_t n = 0;

	if (a->o.ha) {
		e[n].key = amqp_cstring_bytes("x-ha-policy");
		e[n].value.kind = AMQP_FIELD_KIND_UTF8;
		e[n].value.value.bytes = amqp_cstring_bytes("all");
		n++;
	}
	if (a->o.transient_ttl_s > 0) {
		e[n].key = amqp_cstring_bytes("x-expires");
		e[n].value.kind = AMQP_FIELD_KIND_I32;
		e[n].value.value.i32 = a->o.transient_ttl_s * 1000;
		n++;
	}
	return n;
}

static int
declare_topic_queue(rpc_amqp *a, const char *queue, const char *routing_key, struct rpc_err *reterr)
{
	amqp_table_entry_t e[8];
	amqp_table_t args;
	char what[320];
	int r;

	args.entries = e;
	args.num_entries = (int)topic_queue_args(a, e);
	snprintf(what, sizeof(what), "declare queue '%s'", queue);
	amqp_queue_declare(a->conn, CH_CONSUME, amqp_cstring_bytes(queue), 0,
	    a->o.durable || a->o.quorum, 0, a->o.auto_delete, args);
	r = reply_check(amqp_get_rpc_reply(a->conn), what, reterr);
	if (r < 0)
		return r;
	snprintf(what, sizeof(what), "bind queue '%s'", queue);
	amqp_queue_bind(a->conn, CH_CONSUME, amqp_cstring_bytes(queue),
	    amqp_cstring_bytes(a->exchange), amqp_cstring_bytes(routing_key), amqp_empty_table);
	return reply_check(amqp_get_rpc_reply(a->conn), what, reterr);
}

static int
declare_transient_queue(rpc_amqp *a, const char *queue, struct rpc_err *reterr)
{
	amqp_table_entry_t e[4];
	amqp_table_t args;
	char what[320];

	args.entries = e;
	args.num_entries = (int)transient_queue_args(a, e);
	snprintf(what, sizeof(what), "declare queue '%s'", queue);
	amqp_queue_declare(a->conn, CH_CONSUME, amqp_cstring_bytes(queue), 0, 0, 0, 0, args);
	return reply_check(amqp_get_rpc_reply(a->conn), what, reterr);
}

static int
consume(rpc_amqp *a, const char *queue, const char *tag, struct rpc_err *reterr)
{
	char what[340];

	snprintf(what, sizeof(what), "consume '%s'", queue);
	amqp_basic_consume(a->conn, CH_CONSUME, amqp_cstring_bytes(queue), amqp_cstring_bytes(tag),
	    0, 0, 0, amqp_empty_table);
	return reply_check(amqp_get_rpc_reply(a->conn), what, reterr);
}

static int
declare_all(rpc_amqp *a, struct rpc_err *reterr)
{
	static const char *const prios[NOTIFY_PRIORITIES] = {"info", "warn", "error"};
	int r;

	amqp_exchange_declare(a->conn, CH_CONSUME, amqp_cstring_bytes(a->exchange),
	    amqp_cstring_bytes("topic"), 0, a->o.durable || a->o.quorum, a->o.auto_delete, 0,
	    amqp_empty_table);
	r = reply_check(amqp_get_rpc_reply(a->conn), "declare exchange", reterr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->n_topics; i++) {
		char name[320];
		char fanout[160];

		r = declare_topic_queue(a, a->topics[i], a->topics[i], reterr);
		if (r < 0)
			return r;
		snprintf(name, sizeof(name), "%s.%s", a->topics[i], a->server);
		r = declare_topic_queue(a, name, name, reterr);
		if (r < 0)
			return r;
		snprintf(fanout, sizeof(fanout), "%s_fanout", a->topics[i]);
		amqp_exchange_declare(a->conn, CH_CONSUME, amqp_cstring_bytes(fanout),
		    amqp_cstring_bytes("fanout"), 0, 0, 1, 0, amqp_empty_table);
		r = reply_check(amqp_get_rpc_reply(a->conn), "declare fanout exchange", reterr);
		if (r < 0)
			return r;
		r = declare_transient_queue(a, a->fanout_queues[i], reterr);
		if (r < 0)
			return r;
		amqp_queue_bind(a->conn, CH_CONSUME, amqp_cstring_bytes(a->fanout_queues[i]),
		    amqp_cstring_bytes(fanout), amqp_cstring_bytes(a->topics[i]), amqp_empty_table);
		r = reply_check(amqp_get_rpc_reply(a->conn), "bind fanout queue", reterr);
		if (r < 0)
			return r;
	}
	r = declare_transient_queue(a, a->reply_queue, reterr);
	if (r < 0)
		return r;
	/* The notifier declares its queues so notifications wait for a consumer. */
	for (size_t i = 0; i < NOTIFY_PRIORITIES; i++) {
		char rk[128];

		snprintf(rk, sizeof(rk), "%s.%s", a->notify_topic, prios[i]);
		r = declare_topic_queue(a, rk, rk, reterr);
		if (r < 0)
			return r;
	}
	if (a->o.prefetch > 0) {
		amqp_basic_qos(a->conn, CH_CONSUME, 0, (uint16_t)a->o.prefetch, 0);
		r = reply_check(amqp_get_rpc_reply(a->conn), "basic.qos", reterr);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < a->n_topics; i++) {
		char name[320], tag[3][32];

		/* Consumer tags must be unique on the channel; "reply" marks our replies. */
		snprintf(tag[0], sizeof(tag[0]), "topic%zu", i);
		snprintf(tag[1], sizeof(tag[1]), "server%zu", i);
		snprintf(tag[2], sizeof(tag[2]), "fanout%zu", i);
		r = consume(a, a->topics[i], tag[0], reterr);
		if (r < 0)
			return r;
		snprintf(name, sizeof(name), "%s.%s", a->topics[i], a->server);
		r = consume(a, name, tag[1], reterr);
		if (r < 0)
			return r;
		r = consume(a, a->fanout_queues[i], tag[2], reterr);
		if (r < 0)
			return r;
	}
	return consume(a, a->reply_queue, "reply", reterr);
}

static int
send_entry(rpc_amqp *a, struct outbox_entry *e)
{
	amqp_basic_properties_t p;
	amqp_bytes_t body;
	char exp[32];
	int st;

	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
	           AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
	           AMQP_BASIC_HEADERS_FLAG;
	p.content_type = amqp_cstring_bytes("application/json");
	p.content_encoding = amqp_cstring_bytes("utf-8");
	p.delivery_mode = 2;
	p.priority = 0;
	p.headers.num_entries = 0;
	p.headers.entries = NULL;
	if (e->expiration_ms > 0) {
		snprintf(exp, sizeof(exp), "%d", e->expiration_ms);
		p._flags |= AMQP_BASIC_EXPIRATION_FLAG;
		p.expiration = amqp_cstring_bytes(exp);
	}
	body.bytes = e->body;
	body.len = e->len;
	st = amqp_basic_publish(a->conn, CH_PUBLISH, amqp_cstring_bytes(e->exchange),
	    amqp_cstring_bytes(e->routing_key), e->mandatory, 0, &p, body);
	if (st != AMQP_STATUS_OK)
		return status_to_errno(st);
	e->seq = a->next_seq++;
	a->stats.published++;
	return 0;
}

static int
flush_outbox(rpc_amqp *a)
{
	for (struct outbox_entry *e = a->out_head; e != NULL; e = e->next) {
		if (e->seq != 0)
			continue;
		int r = send_entry(a, e);

		if (r < 0)
			return r;
	}
	return 0;
}

static bool
is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Why a TLS handshake failed, in words an operator can act on. */
static const char *
tls_reason(int status)
{
	switch (status) {
	case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
		return "the broker's certificate is not signed by the configured CA";
	case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
		return "the broker's certificate does not name this host";
	case AMQP_STATUS_SSL_CONNECTION_FAILED:
		return "TLS handshake failed (certificate not trusted by the CA, or the port "
		       "does not speak TLS)";
	default:
		return amqp_error_string2(status);
	}
}

/* Why opening the TCP connection failed (rabbitmq-c keeps the errno). */
static int
socket_failed(rpc_amqp *a, int st, struct rpc_err *reterr)
{
	if (st == AMQP_STATUS_SOCKET_ERROR)
		return rpc_err_set(
		    reterr, -ECONNREFUSED, "cannot open a TCP connection (refused or unreachable)");
	if (st == AMQP_STATUS_TIMEOUT)
		return rpc_err_set(
		    reterr, -ETIMEDOUT, "no answer within %d ms", a->connect_timeout_ms);
	return rpc_err_set(reterr, status_to_errno(st), "%s", amqp_error_string2(st));
}

/* Opens the socket of one broker, TLS or not.  On failure conn is left for
 * the caller to destroy. */
static int
open_socket(rpc_amqp *a, const struct rpc_url_host *h, struct rpc_err *reterr)
{
	struct timeval tv;
	amqp_socket_t *sock;
	int st;

	tv.tv_sec = a->connect_timeout_ms / 1000;
	tv.tv_usec = (a->connect_timeout_ms % 1000) * 1000;
	if (!a->url->ssl) {
		sock = amqp_tcp_socket_new(a->conn);
		if (sock == NULL)
			return rpc_err_set(reterr, -ENOMEM, "cannot create socket");
		st = amqp_socket_open_noblock(sock, h->host, h->port, &tv);
		return st == AMQP_STATUS_OK ? 0 : socket_failed(a, st, reterr);
	}
	sock = amqp_ssl_socket_new(a->conn);
	if (sock == NULL)
		return rpc_err_set(reterr, -ENOMEM, "cannot create TLS socket");
	/* oslo (py-amqp) verifies the chain only; we also check the name, except
	 * for IP literals, which rabbitmq-c 0.11 cannot match against IP SANs. */
	amqp_ssl_socket_set_verify_peer(sock, a->url->ssl_ca_file != NULL);
	amqp_ssl_socket_set_verify_hostname(
	    sock, a->url->ssl_ca_file != NULL && !is_ip_literal(h->host));
	if (a->url->ssl_ca_file != NULL &&
	    amqp_ssl_socket_set_cacert(sock, a->url->ssl_ca_file) != AMQP_STATUS_OK)
		return rpc_err_set(
		    reterr, -EINVAL, "TLS: cannot load CA file '%s'", a->url->ssl_ca_file);
	if (a->url->ssl_cert_file != NULL &&
	    amqp_ssl_socket_set_key(sock, a->url->ssl_cert_file,
	        a->url->ssl_key_file != NULL ? a->url->ssl_key_file : a->url->ssl_cert_file) !=
	        AMQP_STATUS_OK)
		return rpc_err_set(reterr, -EINVAL,
		    "TLS: cannot load client certificate '%s' / key '%s'", a->url->ssl_cert_file,
		    a->url->ssl_key_file != NULL ? a->url->ssl_key_file : a->url->ssl_cert_file);
	st = amqp_socket_open_noblock(sock, h->host, h->port, &tv);
	if (st == AMQP_STATUS_OK)
		return 0;
	if (st == AMQP_STATUS_SOCKET_ERROR || st == AMQP_STATUS_TIMEOUT)
		return socket_failed(a, st, reterr);
	if (a->url->ssl_ca_file != NULL)
		return rpc_err_set(reterr, status_to_errno(st), "TLS: %s (CA file '%s')",
		    tls_reason(st), a->url->ssl_ca_file);
	return rpc_err_set(reterr, status_to_errno(st), "TLS: %s", tls_reason(st));
}

/* One attempt on one broker: socket, login, channels, declarations. */
static int
connect_one(rpc_amqp *a, const struct rpc_url_host *h, struct rpc_err *reterr)
{
	amqp_table_entry_t props[3], caps[3];
	amqp_table_t ptable;
	amqp_rpc_reply_t lr;
	int r;

	drop_connection(a);
	a->conn = amqp_new_connection();
	if (a->conn == NULL)
		return rpc_err_set(reterr, -ENOMEM, "out of memory");
	r = open_socket(a, h, reterr);
	if (r < 0)
		return r;
	props[0].key = amqp_cstring_bytes("connection_name");
	props[0].value.kind = AMQP_FIELD_KIND_UTF8;
	props[0].value.value.bytes = amqp_cstring_bytes(a->connection_name);
	props[1].key = amqp_cstring_bytes("product");
	props[1].value.kind = AMQP_FIELD_KIND_UTF8;
	props[1].value.value.bytes = amqp_cstring_bytes("ferry");
	/* As oslo (kombu): without consumer_cancel_notify the broker silently
	 * drops our consumer when its queue goes away (e.g. an auto-delete
	 * queue still being deleted when we redeclared it); with it we get
	 * basic.cancel and reconnect, which declares everything again. */
	caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
	caps[1].key = amqp_cstring_bytes("connection.blocked");
	caps[2].key = amqp_cstring_bytes("authentication_failure_close");
	for (size_t i = 0; i < 3; i++) {
		caps[i].value.kind = AMQP_FIELD_KIND_BOOLEAN;
		caps[i].value.value.boolean = 1;
	}
	props[2].key = amqp_cstring_bytes("capabilities");
	props[2].value.kind = AMQP_FIELD_KIND_TABLE;
	props[2].value.value.table.entries = caps;
	props[2].value.value.table.num_entries = 3;
	ptable.entries = props;
	ptable.num_entries = 3;
	lr = amqp_login_with_properties(a->conn, a->url->vhost, 0, AMQP_DEFAULT_FRAME_SIZE,
	    a->o.heartbeat_s, &ptable, AMQP_SASL_METHOD_PLAIN, h->user ? h->user : "guest",
	    h->password ? h->password : "guest");
	if (a->url->ssl && lr.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    lr.library_error == AMQP_STATUS_SSL_ERROR)
		/* With TLS 1.3 the broker checks our certificate after the
		 * handshake has completed on our side: a refusal shows up here. */
		return rpc_err_set(reterr, -EPROTO,
		    "TLS: the broker ended the TLS session at login (does it require a client "
		    "certificate? %s)",
		    a->url->ssl_cert_file != NULL ? "ours was not accepted"
		                                  : "ssl_cert_file is not set");
	if (!a->url->ssl && lr.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    (lr.library_error == AMQP_STATUS_SOCKET_ERROR ||
	        lr.library_error == AMQP_STATUS_CONNECTION_CLOSED ||
	        lr.library_error == AMQP_STATUS_SOCKET_CLOSED))
		return rpc_err_set(reterr, -ECONNRESET,
		    "login: the broker closed the connection without an AMQP answer (a TLS port? "
		    "then use amqps:// or ssl = true)");
	r = reply_check(lr, "login", reterr);
	if (r < 0)
		return r;
	amqp_channel_open(a->conn, CH_CONSUME);
	r = reply_check(amqp_get_rpc_reply(a->conn), "open channel", reterr);
	if (r < 0)
		return r;
	amqp_channel_open(a->conn, CH_PUBLISH);
	r = reply_check(amqp_get_rpc_reply(a->conn), "open channel", reterr);
	if (r < 0)
		return r;
	amqp_confirm_select(a->conn, CH_PUBLISH);
	r = reply_check(amqp_get_rpc_reply(a->conn), "confirm.select", reterr);
	if (r < 0)
		return r;
	a->next_seq = 1;
	r = declare_all(a, reterr);
	if (r < 0)
		return r;
	a->connected = true;
	a->stats.connects++;
	/* Everything unconfirmed from the last connection goes out again. */
	for (struct outbox_entry *e = a->out_head; e != NULL; e = e->next)
		e->seq = 0;
	r = flush_outbox(a);
	if (r < 0) {
		drop_connection(a);
		return rpc_err_set(reterr, r, "resending queued messages failed");
	}
	return 0;
}

int
rpc_amqp_connect(rpc_amqp *a, struct rpc_err *reterr)
{
	char why[sizeof(reterr->msg)] = "";
	size_t used = 0;
	int r = -EIO;

	for (size_t i = 0; i < a->url->n_hosts; i++) {
		const struct rpc_url_host *h = &a->url->hosts[a->next_host % a->url->n_hosts];
		struct rpc_err e = {{0}};
		int n;

		r = connect_one(a, h, &e);
		if (r == 0) {
			/* A reconnect starts with the next broker, as oslo round-robins. */
			a->next_host = (a->next_host + 1) % a->url->n_hosts;
			snprintf(a->broker, sizeof(a->broker),
			    strchr(h->host, ':') != NULL ? "[%s]:%d" : "%s:%d", h->host, h->port);
			/* The brokers skipped on the way, for the owner to report. */
			rpc_err_set(reterr, 0, "%s", why);
			return 0;
		}
		drop_connection(a);
		a->stats.connect_failures++;
		a->next_host = (a->next_host + 1) % a->url->n_hosts;
		n = snprintf(why + used, sizeof(why) - used, "%sbroker %.64s:%d: %s",
		    used > 0 ? "; " : "", h->host, h->port, e.msg);
		if (n > 0)
			used = used + (size_t)n < sizeof(why) ? used + (size_t)n : sizeof(why) - 1;
	}
	return rpc_err_set(reterr, r, "%s", why);
}

bool
rpc_amqp_connected(const rpc_amqp *a)
{
	return a != NULL && a->connected;
}

int
rpc_amqp_fd(const rpc_amqp *a)
{
	return a->connected ? amqp_get_sockfd(a->conn) : -1;
}

bool
rpc_amqp_pending(const rpc_amqp *a)
{
	return a->connected && (amqp_frames_enqueued(a->conn) || amqp_data_in_buffer(a->conn));
}

int
rpc_amqp_timeout_ms(const rpc_amqp *a)
{
	int hb = a->connected ? amqp_get_heartbeat(a->conn) : 0;

	return hb > 0 ? hb * 1000 / 4 : 15000;
}

static void
confirm(rpc_amqp *a, uint64_t tag, bool multiple, bool nack)
{
	struct outbox_entry **pp = &a->out_head;
	struct outbox_entry *prev = NULL;

	while (*pp != NULL) {
		struct outbox_entry *e = *pp;
		bool hit = e->seq != 0 && (multiple ? e->seq <= tag : e->seq == tag);

		if (!hit) {
			prev = e;
			pp = &e->next;
			continue;
		}
		if (nack) {
			/* The broker could not take it: send it again later. */
			e->seq = 0;
			prev = e;
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		if (a->out_tail == e)
			a->out_tail = prev;
		a->out_len--;
		a->stats.confirmed++;
		outbox_entry_free(e);
	}
}

static void
deliver(rpc_amqp *a, rpc_amqp_on_delivery cb, void *ud)
{
	struct rpc_delivery d;

	d.kind = a->in.kind;
	d.tag = a->in.tag;
	d.body = a->in.body != NULL ? a->in.body : "";
	d.len = a->in.len;
	d.routing_key = a->in.routing_key;
	d.redelivered = a->in.redelivered;
	d.compressed = a->in.compressed;
	d.oversized = a->in.oversized;
	d.body_size = a->in.want;
	if (d.oversized) {
		d.body = "";
		d.len = 0;
		a->stats.oversized++;
	}
	cb(ud, &d);
	free(a->in.body);
	memset(&a->in, 0, sizeof(a->in));
}

static bool
headers_say_compressed(const amqp_basic_properties_t *p)
{
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return false;
	for (int i = 0; i < p->headers.num_entries; i++) {
		const amqp_bytes_t *k = &p->headers.entries[i].key;

		if (k->len == strlen("compression") && memcmp(k->bytes, "compression", k->len) == 0)
			return true;
	}
	return false;
}

static int
handle_method(rpc_amqp *a, const amqp_frame_t *f, struct rpc_err *reterr)
{
	switch (f->payload.method.id) {
	case AMQP_BASIC_DELIVER_METHOD: {
		const amqp_basic_deliver_t *m = f->payload.method.decoded;
		size_t n = m->routing_key.len < sizeof(a->in.routing_key) - 1
		               ? m->routing_key.len
		               : sizeof(a->in.routing_key) - 1;

		free(a->in.body); /* an unfinished delivery (protocol error) */
		memset(&a->in, 0, sizeof(a->in));
		a->in.active = true;
		a->in.tag = m->delivery_tag;
		a->in.redelivered = m->redelivered;
		a->in.kind =
		    (m->consumer_tag.len == 5 && memcmp(m->consumer_tag.bytes, "reply", 5) == 0)
		        ? RPC_DELIVERY_REPLY
		        : RPC_DELIVERY_REQUEST;
		memcpy(a->in.routing_key, m->routing_key.bytes, n);
		return 0;
	}
	case AMQP_BASIC_RETURN_METHOD: {
		const amqp_basic_return_t *m = f->payload.method.decoded;
		size_t n = m->routing_key.len < sizeof(a->in.routing_key) - 1
		               ? m->routing_key.len
		               : sizeof(a->in.routing_key) - 1;

		free(a->in.body);
		memset(&a->in, 0, sizeof(a->in));
		a->in.active = true;
		a->in.kind = RPC_DELIVERY_RETURNED;
		memcpy(a->in.routing_key, m->routing_key.bytes, n);
		a->stats.returned++;
		return 0;
	}
	case AMQP_BASIC_ACK_METHOD: {
		const amqp_basic_ack_t *m = f->payload.method.decoded;

		confirm(a, m->delivery_tag, m->multiple, false);
		return 0;
	}
	case AMQP_BASIC_NACK_METHOD: {
		const amqp_basic_nack_t *m = f->payload.method.decoded;

		confirm(a, m->delivery_tag, m->multiple, true);
		a->stats.nacked++;
		return flush_outbox(a) < 0
		           ? rpc_err_set(reterr, -ECONNRESET,
		                 "broker connection lost resending a nacked message")
		           : 0;
	}
	case AMQP_CHANNEL_CLOSE_METHOD: {
		const amqp_channel_close_t *m = f->payload.method.decoded;
		amqp_channel_close_ok_t ok = {0};

		amqp_send_method(a->conn, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		return rpc_err_set(reterr, -EPROTO, "broker closed channel %u: %u %.*s", f->channel,
		    m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		const amqp_connection_close_t *m = f->payload.method.decoded;
		amqp_connection_close_ok_t ok = {0};

		amqp_send_method(a->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		return rpc_err_set(reterr, -ECONNRESET, "broker closed the connection: %u %.*s",
		    m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
	}
	case AMQP_BASIC_CANCEL_METHOD: {
		const amqp_basic_cancel_t *m = f->payload.method.decoded;

		/* Queue deleted or failed over: start over, declaring it again. */
		return rpc_err_set(reterr, -ECONNRESET, "broker cancelled consumer '%.*s'",
		    (int)m->consumer_tag.len, (const char *)m->consumer_tag.bytes);
	}
	default:
		return 0; /* connection.blocked/unblocked and friends: nothing to do */
	}
}

int
rpc_amqp_process(rpc_amqp *a, rpc_amqp_on_delivery cb, void *ud, struct rpc_err *reterr)
{
	struct timeval zero = {0, 0};
	amqp_frame_t f;
	int r = 0;

	if (!a->connected)
		return rpc_err_set(reterr, -ENOTCONN, "not connected");
	for (int i = 0; i < FRAMES_PER_PROCESS; i++) {
		int st = amqp_simple_wait_frame_noblock(a->conn, &f, &zero);

		if (st == AMQP_STATUS_TIMEOUT)
			break;
		if (st != AMQP_STATUS_OK) {
			r = rpc_err_set(reterr, status_to_errno(st), "broker connection lost: %s",
			    amqp_error_string2(st));
			break;
		}
		if (f.frame_type == AMQP_FRAME_METHOD) {
			r = handle_method(a, &f, reterr);
			if (r < 0)
				break;
		} else if (f.frame_type == AMQP_FRAME_HEADER && a->in.active) {
			const amqp_basic_properties_t *p = f.payload.properties.decoded;

			a->in.want = (size_t)f.payload.properties.body_size;
			a->in.compressed = headers_say_compressed(p);
			/* Never buffer what the codec would refuse anyway. */
			a->in.oversized = f.payload.properties.body_size > RPC_AMQP_MAX_BODY;
			if (a->in.want > 0 && !a->in.oversized) {
				a->in.body = malloc(a->in.want);
				if (a->in.body == NULL) {
					r = rpc_err_set(reterr, -ENOMEM, "out of memory");
					break;
				}
			}
			if (a->in.want == 0)
				deliver(a, cb, ud);
		} else if (f.frame_type == AMQP_FRAME_BODY && a->in.active) {
			size_t n = f.payload.body_fragment.len;

			if (n > a->in.want - a->in.len)
				n = a->in.want - a->in.len;
			if (!a->in.oversized)
				memcpy(a->in.body + a->in.len, f.payload.body_fragment.bytes, n);
			a->in.len += n;
			if (a->in.len >= a->in.want)
				deliver(a, cb, ud);
		}
		if (!a->connected)
			break; /* the callback may not drop us, but be safe */
		amqp_maybe_release_buffers(a->conn);
	}
	if (r < 0) {
		drop_connection(a);
		return r;
	}
	return 0;
}

int
rpc_amqp_ack(rpc_amqp *a, uint64_t tag)
{
	if (!a->connected)
		return -ENOTCONN;
	return amqp_basic_ack(a->conn, CH_CONSUME, tag, 0) == 0 ? 0 : -ECONNRESET;
}

int
rpc_amqp_reject(rpc_amqp *a, uint64_t tag, bool requeue)
{
	if (!a->connected)
		return -ENOTCONN;
	return amqp_basic_reject(a->conn, CH_CONSUME, tag, requeue) == 0 ? 0 : -ECONNRESET;
}

int
rpc_amqp_publish(rpc_amqp *a, const char *exchange, const char *routing_key, json_t *inner,
    bool mandatory, int expiration_ms)
{
	struct outbox_entry *e;
	int r = 0;

	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	e->exchange = strdup(exchange);
	e->routing_key = strdup(routing_key);
	e->body = rpc_envelope_encode(inner, &e->len);
	e->mandatory = mandatory;
	e->expiration_ms = expiration_ms;
	if (e->exchange == NULL || e->routing_key == NULL || e->body == NULL) {
		outbox_entry_free(e);
		return -ENOMEM;
	}
	if (a->out_len >= a->out_max) {
		struct outbox_entry *old = a->out_head;

		a->out_head = old->next;
		if (a->out_tail == old)
			a->out_tail = NULL;
		outbox_entry_free(old);
		a->out_len--;
		a->stats.dropped++;
		r = -ENOBUFS;
	}
	if (a->out_tail != NULL)
		a->out_tail->next = e;
	else
		a->out_head = e;
	a->out_tail = e;
	a->out_len++;
	if (a->connected && send_entry(a, e) < 0)
		drop_connection(a); /* the owner notices and reconnects; e stays queued */
	return r;
}

int
rpc_amqp_notify(rpc_amqp *a, const char *routing_key, json_t *inner)
{
	return rpc_amqp_publish(a, a->exchange, routing_key, inner, false, 0);
}

const char *
rpc_amqp_broker(const rpc_amqp *a)
{
	return a->broker;
}

const char *
rpc_amqp_reply_queue(const rpc_amqp *a)
{
	return a->reply_queue;
}

const char *
rpc_amqp_exchange(const rpc_amqp *a)
{
	return a->exchange;
}

void
rpc_amqp_get_stats(const rpc_amqp *a, struct rpc_amqp_stats *ret_stats)
{
	*ret_stats = a->stats;
	ret_stats->outbox_len = a->out_len;
}
