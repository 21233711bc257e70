/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_amqp: rabbitmq-c adapter.  One connection, channel 1 consumes,
 * channel 2 publishes with confirms, channel 3 publishes the replies to
 * read-only calls without them.  Frames are read without blocking and
 * assembled here, so the owner's poll loop never stalls on the broker.
 * AMQP status codes become -errno at this edge and nowhere else.
 *
 * How we (re)connect to RabbitMQ is all here: rpc_amqp_connect() tries the
 * brokers round-robin (connect_one: socket, login, channels, declarations,
 * outbox resend) and any lost connection leaves the handle disconnected for
 * the owner to call it again (the owner only paces the retries).
 */
#include "rpc_amqp.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "rpc_amqp_priv.h"
#include "rpc_msg.h"
#include "rpc_outbox.h"
#include "rpc_uuid.h"

#define FRAMES_PER_PROCESS 512

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

int
rpc_amqp_status_to_errno(int status)
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
int
rpc_amqp_reply_check(amqp_rpc_reply_t r, const char *what, struct rpc_err *reterr)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return 0;
	case AMQP_RESPONSE_NONE:
		return rpc_err_set(reterr, -EPROTO, "%s: missing reply", what);
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		return rpc_err_set(reterr, rpc_amqp_status_to_errno(r.library_error), "%s: %s",
		    what, amqp_error_string2(r.library_error));
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
	a->exchange = strdup(opts->exchange);
	a->server = strdup(opts->server);
	a->connection_name = strdup(opts->connection_name ? opts->connection_name : "ferry-worker");
	a->notify_topic =
	    strdup(opts->notify_topic ? opts->notify_topic : "versioned_notifications");
	u = calloc(1, sizeof(*u));
	a->url = u;
	if (a->exchange == NULL || a->server == NULL || a->connection_name == NULL ||
	    a->notify_topic == NULL || u == NULL ||
	    rpc_outbox_new(opts->outbox_max_bytes, &a->outbox) < 0)
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
drop_connection(rpc_amqp *a)
{
	if (a->conn != NULL) {
		amqp_destroy_connection(a->conn);
		a->conn = NULL;
	}
	if (a->connected)
		a->stats.disconnects++;
	a->connected = false;
	a->corked = false;
	rpc_wire_clear(&a->wire);
	free(a->in.body);
	memset(&a->in, 0, sizeof(a->in));
}

rpc_amqp *
rpc_amqp_free(rpc_amqp *a)
{
	if (a == NULL)
		return NULL;
	if (a->connected && rpc_amqp_wire_flush(a) < 0)
		drop_connection(a);
	if (a->connected) {
		/* As oslo on a clean stop: cancel, delete our transient queues, close. */
		amqp_channel_close(a->conn, CH_UNCONFIRMED, AMQP_REPLY_SUCCESS);
		amqp_channel_close(a->conn, CH_PUBLISH, AMQP_REPLY_SUCCESS);
		for (size_t i = 0; i < a->n_topics; i++)
			amqp_queue_delete(
			    a->conn, CH_CONSUME, amqp_cstring_bytes(a->fanout_queues[i]), 0, 0);
		amqp_channel_close(a->conn, CH_CONSUME, AMQP_REPLY_SUCCESS);
		amqp_connection_close(a->conn, AMQP_REPLY_SUCCESS);
	}
	drop_connection(a);
	rpc_wire_free(&a->wire);
	rpc_outbox_free(a->outbox);
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

/*
 * Over plain TCP the frames ferry sends on the hot path (replies and other
 * publishes, acks, rejects) are encoded here (rpc_amqp_wire.c) and written
 * with one send(2) per pass of rpc_amqp_process, or at once outside a pass:
 * rabbitmq-c writes each frame on its own (three writes per publish), and
 * on loopback every write runs the broker's receive path on our CPU.  Over
 * TLS they go through rabbitmq-c (its OpenSSL socket), corked per pass.
 * Frames the library sends itself (heartbeats, synchronous methods) go
 * between whole frames of ours: the buffer only ever holds whole frames
 * and a write either completes or the connection is dropped.
 */
static bool
direct(const rpc_amqp *a)
{
	return !a->url->ssl;
}

/* How long a write may wait for room in the socket before the connection
 * counts as lost: the broker would have missed two heartbeats by then. */
static int
write_stall_ms(const rpc_amqp *a)
{
	int hb = a->conn != NULL ? amqp_get_heartbeat(a->conn) : 0;

	return hb > 0 ? 2 * hb * 1000 : 60000;
}

int
rpc_amqp_wire_flush(rpc_amqp *a)
{
	struct rpc_wire *w = &a->wire;
	int fd;

	if (w->len == 0)
		return 0;
	if (a->conn == NULL || !a->connected)
		return -ENOTCONN;
	fd = amqp_get_sockfd(a->conn);
	while (w->off < w->len) {
		ssize_t n = send(fd, w->buf + w->off, w->len - w->off, MSG_NOSIGNAL);

		if (n >= 0) {
			w->off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int pr = poll(&pfd, 1, write_stall_ms(a));

			if (pr < 0 && errno == EINTR)
				continue;
			if (pr <= 0)
				return pr == 0 ? -ETIMEDOUT : -errno;
			continue;
		}
		return -ECONNRESET;
	}
	a->stats.writes++;
	rpc_wire_clear(w);
	return 0;
}

/* Writes the buffered frames unless a pass is running (it writes them at
 * its end); drops the connection when that fails. */
static int
wire_kick(rpc_amqp *a)
{
	int r;

	if (a->in_pass)
		return 0;
	r = rpc_amqp_wire_flush(a);
	if (r < 0)
		drop_connection(a);
	return r;
}

void
rpc_amqp_publish_props(
    amqp_basic_properties_t *p, int expiration_ms, char *exp_buf, size_t exp_size)
{
	memset(p, 0, sizeof(*p));
	p->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
	            AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
	            AMQP_BASIC_HEADERS_FLAG;
	p->content_type = amqp_cstring_bytes("application/json");
	p->content_encoding = amqp_cstring_bytes("utf-8");
	p->delivery_mode = 2;
	if (expiration_ms > 0) {
		snprintf(exp_buf, exp_size, "%d", expiration_ms);
		p->_flags |= AMQP_BASIC_EXPIRATION_FLAG;
		p->expiration = amqp_cstring_bytes(exp_buf);
	}
}

/* One basic.publish with its header and body frames on channel ch: into
 * a->wire over plain TCP (written by the caller), through rabbitmq-c over
 * TLS.  Returns 0 or -errno. */
static int
send_publish(rpc_amqp *a, uint16_t ch, const char *exchange, const char *routing_key,
    bool mandatory, int expiration_ms, void *body, size_t len)
{
	amqp_basic_properties_t p;
	amqp_bytes_t b;
	char exp[32];
	int st;

	if (direct(a)) {
		struct rpc_wire_publish m = {
		    .channel = ch,
		    .exchange = exchange,
		    .routing_key = routing_key,
		    .mandatory = mandatory,
		    .expiration_ms = expiration_ms,
		    .body = body,
		    .len = len,
		    .frame_max = (size_t)amqp_get_frame_max(a->conn),
		};

		return rpc_wire_publish(&a->wire, &m);
	}
	rpc_amqp_publish_props(&p, expiration_ms, exp, sizeof(exp));
	b.bytes = body;
	b.len = len;
	st = amqp_basic_publish(a->conn, ch, amqp_cstring_bytes(exchange),
	    amqp_cstring_bytes(routing_key), mandatory, 0, &p, b);
	return st == AMQP_STATUS_OK ? 0 : rpc_amqp_status_to_errno(st);
}

/* The outbox's send function: one basic.publish on the confirm channel. */
static int
send_msg(void *userdata, const struct rpc_outbox_msg *e)
{
	rpc_amqp *a = userdata;
	int r = send_publish(a, CH_PUBLISH, e->exchange, e->routing_key, e->mandatory,
	    e->expiration_ms, e->body, e->len);

	if (r < 0)
		return r;
	a->stats.published++;
	return 0;
}

/* Sends what the outbox has not sent on this connection; outside a pass
 * the frames are written at once.  On error the caller drops the
 * connection (if this did not already). */
static int
flush_outbox(rpc_amqp *a)
{
	int r = rpc_outbox_flush(a->outbox, send_msg, a);

	if (r < 0)
		return r;
	return wire_kick(a);
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
	r = rpc_amqp_open_socket(
	    a->conn, a->url, h, !a->o.ssl_no_verify, a->connect_timeout_ms, reterr);
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
	r = rpc_amqp_reply_check(lr, "login", reterr);
	if (r < 0)
		return r;
	amqp_channel_open(a->conn, CH_CONSUME);
	r = rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), "open channel", reterr);
	if (r < 0)
		return r;
	amqp_channel_open(a->conn, CH_PUBLISH);
	r = rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), "open channel", reterr);
	if (r < 0)
		return r;
	amqp_confirm_select(a->conn, CH_PUBLISH);
	r = rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), "confirm.select", reterr);
	if (r < 0)
		return r;
	/* Never put in confirm mode (that cannot be undone on a channel). */
	amqp_channel_open(a->conn, CH_UNCONFIRMED);
	r = rpc_amqp_reply_check(amqp_get_rpc_reply(a->conn), "open channel", reterr);
	if (r < 0)
		return r;
	r = rpc_amqp_declare_all(a, reterr);
	if (r < 0)
		return r;
	a->connected = true;
	a->stats.connects++;
	/* Everything unconfirmed from the last connection goes out again. */
	rpc_outbox_restart(a->outbox);
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
deliver(rpc_amqp *a, rpc_amqp_on_delivery cb, void *ud)
{
	struct rpc_delivery d;

	if (a->serving_stopped && a->in.kind == RPC_DELIVERY_REQUEST) {
		/* Sent before our basic.cancel took effect: back to its queue. */
		(void)rpc_amqp_reject(a, a->in.tag, true);
		a->stats.requeued++;
		free(a->in.body);
		memset(&a->in, 0, sizeof(a->in));
		return;
	}
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

		a->stats.confirmed += rpc_outbox_ack(a->outbox, m->delivery_tag, m->multiple);
		return 0;
	}
	case AMQP_BASIC_NACK_METHOD: {
		const amqp_basic_nack_t *m = f->payload.method.decoded;

		/* The broker could not take it: send it again now. */
		rpc_outbox_nack(a->outbox, m->delivery_tag, m->multiple);
		a->stats.nacked++;
		return flush_outbox(a) < 0
		           ? rpc_err_set(reterr, -ECONNRESET,
		                 "broker connection lost resending a nacked message")
		           : 0;
	}
	case AMQP_CHANNEL_CLOSE_METHOD: {
		const amqp_channel_close_t *m = f->payload.method.decoded;
		amqp_channel_close_ok_t ok = {0};

		(void)rpc_amqp_wire_flush(a); /* whole frames before the library's */
		amqp_send_method(a->conn, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		return rpc_err_set(reterr, -EPROTO, "broker closed channel %u: %u %.*s", f->channel,
		    m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		const amqp_connection_close_t *m = f->payload.method.decoded;
		amqp_connection_close_ok_t ok = {0};

		(void)rpc_amqp_wire_flush(a);
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

/*
 * Over TLS, corks the socket while a pass hands deliveries over: the
 * replies and acks their handlers send (four writes per call through
 * rabbitmq-c: publish method, header, body, then basic.ack) leave as one
 * TCP segment when the pass ends, not two per call.  On loopback each
 * segment costs the sender the broker's receive path too, and wakes the
 * broker once more.  Best effort: a socket that refuses TCP_CORK just sends
 * as before.  Plain TCP needs no cork: its frames wait in a->wire.
 */
static void
cork(rpc_amqp *a, bool on)
{
	int v = on;

	if (a->corked == on || a->conn == NULL || direct(a))
		return;
	a->corked = on;
	(void)setsockopt(amqp_get_sockfd(a->conn), IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
}

int
rpc_amqp_process(rpc_amqp *a, rpc_amqp_on_delivery cb, void *ud, struct rpc_err *reterr)
{
	struct timeval zero = {0, 0};
	amqp_frame_t f;
	int r = 0;

	if (!a->connected)
		return rpc_err_set(reterr, -ENOTCONN, "not connected");
	a->in_pass = true;
	for (int i = 0; i < FRAMES_PER_PROCESS; i++) {
		int st;

		/*
		 * The first read empties the socket into the library's buffer;
		 * once that buffer holds no more frames the pass ends, without
		 * a recv(2) and a poll(2) that would only say "nothing yet" (the
		 * owner polls the socket anyway).  Not over TLS: there OpenSSL
		 * may hold decrypted bytes that neither the buffer nor poll(2)
		 * shows.
		 */
		if (i > 0 && !a->url->ssl && !amqp_frames_enqueued(a->conn) &&
		    !amqp_data_in_buffer(a->conn))
			break;
		st = amqp_simple_wait_frame_noblock(a->conn, &f, &zero);

		if (st == AMQP_STATUS_TIMEOUT)
			break;
		if (st != AMQP_STATUS_OK) {
			r = rpc_err_set(reterr, rpc_amqp_status_to_errno(st),
			    "broker connection lost: %s", amqp_error_string2(st));
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
			if (a->in.want == 0) {
				cork(a, true);
				deliver(a, cb, ud);
			}
		} else if (f.frame_type == AMQP_FRAME_BODY && a->in.active) {
			size_t n = f.payload.body_fragment.len;

			if (n > a->in.want - a->in.len)
				n = a->in.want - a->in.len;
			if (!a->in.oversized)
				memcpy(a->in.body + a->in.len, f.payload.body_fragment.bytes, n);
			a->in.len += n;
			if (a->in.len >= a->in.want) {
				cork(a, true);
				deliver(a, cb, ud);
			}
		}
		if (!a->connected)
			break; /* the callback may not drop us, but be safe */
		amqp_maybe_release_buffers(a->conn);
	}
	a->in_pass = false;
	if (r < 0) {
		drop_connection(a);
		return r;
	}
	if (!a->connected)
		return 0; /* a handler's publish lost it: the owner reconnects */
	cork(a, false);   /* TLS: sends what the pass's handlers queued */
	r = rpc_amqp_wire_flush(a);
	if (r < 0) {
		drop_connection(a);
		return rpc_err_set(reterr, r, "broker connection lost: %s", strerror(-r));
	}
	return 0;
}

int
rpc_amqp_ack(rpc_amqp *a, uint64_t tag)
{
	if (!a->connected)
		return -ENOTCONN;
	if (direct(a))
		return rpc_wire_ack(&a->wire, CH_CONSUME, tag) < 0 ? -ENOMEM : wire_kick(a);
	return amqp_basic_ack(a->conn, CH_CONSUME, tag, 0) == 0 ? 0 : -ECONNRESET;
}

int
rpc_amqp_reject(rpc_amqp *a, uint64_t tag, bool requeue)
{
	if (!a->connected)
		return -ENOTCONN;
	if (direct(a))
		return rpc_wire_reject(&a->wire, CH_CONSUME, tag, requeue) < 0 ? -ENOMEM
		                                                               : wire_kick(a);
	return amqp_basic_reject(a->conn, CH_CONSUME, tag, requeue) == 0 ? 0 : -ECONNRESET;
}

static int
publish(rpc_amqp *a, const char *exchange, const char *routing_key, json_t *inner, bool mandatory,
    int expiration_ms, enum rpc_outbox_class cls)
{
	struct rpc_outbox_msg m;
	int r;

	m.exchange = exchange;
	m.routing_key = routing_key;
	m.body = rpc_envelope_encode(inner, &m.len);
	m.mandatory = mandatory;
	m.expiration_ms = expiration_ms;
	m.cls = cls;
	if (m.body == NULL)
		return -ENOMEM;
	r = rpc_outbox_push(a->outbox, &m);
	if (r < 0)
		return r;
	if (r != 0 && a->on_outbox != NULL) {
		struct rpc_outbox_stats os;
		struct rpc_amqp_outbox_event ev;

		rpc_outbox_get_stats(a->outbox, &os);
		ev.dropped = os.last_drops;
		ev.dropped_total = os.dropped;
		ev.over_bound = (r & RPC_OUTBOX_OVER) != 0;
		ev.bytes = os.bytes;
		ev.max_bytes = os.max_bytes;
		ev.routing_key = routing_key;
		a->on_outbox(a->on_outbox_data, &ev);
	}
	if (a->connected && flush_outbox(a) < 0)
		drop_connection(a); /* the owner notices and reconnects; it stays queued */
	return 0;
}

int
rpc_amqp_publish(rpc_amqp *a, const char *exchange, const char *routing_key, json_t *inner,
    bool mandatory, int expiration_ms)
{
	return publish(a, exchange, routing_key, inner, mandatory, expiration_ms, RPC_OUTBOX_KEEP);
}

int
rpc_amqp_publish_unconfirmed(
    rpc_amqp *a, const char *exchange, const char *routing_key, json_t *inner, bool mandatory)
{
	size_t len;
	char *body = NULL;
	int r = -ENOTCONN;

	if (a->connected)
		body = rpc_envelope_encode(inner, &len);
	if (body != NULL) {
		r = send_publish(a, CH_UNCONFIRMED, exchange, routing_key, mandatory, 0, body, len);
		free(body);
		/* A failed TLS publish may have written part of its frames; a
		 * failed encode into a->wire buffered nothing. */
		if (r < 0 && !direct(a))
			drop_connection(a);
		if (r == 0)
			r = wire_kick(a); /* drops the connection when it fails */
	} else if (a->connected) {
		r = -ENOMEM;
	}
	if (r < 0)
		a->stats.unconfirmed_lost++;
	else
		a->stats.published_unconfirmed++;
	return r;
}

int
rpc_amqp_notify(rpc_amqp *a, const char *routing_key, json_t *inner, enum rpc_outbox_class cls)
{
	return publish(a, a->exchange, routing_key, inner, false, 0, cls);
}

void
rpc_amqp_set_outbox_hook(rpc_amqp *a, rpc_amqp_on_outbox cb, void *userdata)
{
	a->on_outbox = cb;
	a->on_outbox_data = userdata;
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
	struct rpc_outbox_stats os;

	rpc_outbox_get_stats(a->outbox, &os);
	*ret_stats = a->stats;
	ret_stats->outbox_len = os.len;
	ret_stats->outbox_bytes = os.bytes;
	ret_stats->dropped = os.dropped;
}

int
rpc_amqp_stop_serving(rpc_amqp *a, struct rpc_err *reterr)
{
	int r;

	a->serving_stopped = true;
	if (!a->connected)
		return 0;
	r = rpc_amqp_wire_flush(a); /* whole frames before the library's */
	if (r < 0) {
		drop_connection(a);
		return rpc_err_set(reterr, r, "broker connection lost: %s", strerror(-r));
	}
	r = rpc_amqp_cancel_serving(a, reterr);
	if (r < 0)
		drop_connection(a);
	return r;
}
