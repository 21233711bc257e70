/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_amqp_priv.h: what the files of the AMQP adapter share.  The adapter
 * is rpc_amqp.c (connection, reconnect, frames, publishing through the
 * outbox), rpc_amqp_declare.c (what a connection declares) and
 * rpc_amqp_tls.c (opening the TCP or TLS socket of one broker); the
 * rpc_amqp*.c files are the only ones that include <amqp.h>.  Not for
 * anyone else.
 *
 * Thread: the owner's thread, as rpc_amqp.  Never logs.
 */
#ifndef RPC_AMQP_PRIV_H
#define RPC_AMQP_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "rpc_amqp.h"
#include "rpc_amqp_wire.h"
#include "rpc_err.h"
#include "rpc_outbox.h"
#include "rpc_url.h"

#define CH_CONSUME        1
#define CH_PUBLISH        2 /* confirm mode: everything the outbox sends */
#define CH_UNCONFIRMED    3 /* never in confirm mode: replies to read-only calls */
#define MAX_TOPICS        4
#define NOTIFY_PRIORITIES 3

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
	bool serving_stopped; /* rpc_amqp_stop_serving: server queues are not consumed */
	bool corked;          /* TLS: TCP_CORK set for the deliveries of one rpc_amqp_process */
	bool in_pass;         /* inside rpc_amqp_process: frames wait for its end */
	struct rpc_wire wire; /* plain TCP: frames not yet written, sent as one */
	struct inflight in;

	rpc_outbox *outbox;
	rpc_amqp_on_outbox on_outbox;
	void *on_outbox_data;
	struct rpc_amqp_stats stats;
};

/* A synchronous call's reply as 0 or -errno plus a readable reason. */
int rpc_amqp_reply_check(amqp_rpc_reply_t r, const char *what, struct rpc_err *reterr);

/* Declares everything of the connection a->conn and starts consuming
 * (rpc_amqp_declare.c).  Returns 0 or -errno with reterr. */
int rpc_amqp_declare_all(rpc_amqp *a, struct rpc_err *reterr);

/* Writes the frames buffered in a->wire (plain TCP).  Returns 0 or -errno;
 * the connection is then unusable and the caller drops it. */
int rpc_amqp_wire_flush(rpc_amqp *a);

/* The properties of every message ferry publishes through rabbitmq-c (the
 * TLS path), as oslo sends them: JSON in UTF-8, persistent, priority 0, no
 * headers, and an expiration when expiration_ms > 0 (written into exp_buf,
 * which must outlive p).  rpc_amqp_wire encodes the same bytes itself. */
void rpc_amqp_publish_props(
    amqp_basic_properties_t *p, int expiration_ms, char *exp_buf, size_t exp_size);

/* Cancels the consumers of the server queues (rpc_amqp_declare.c).
 * Returns 0 or -errno with reterr. */
int rpc_amqp_cancel_serving(rpc_amqp *a, struct rpc_err *reterr);

/* An AMQP_STATUS_* code as -errno: the only place they are translated. */
int rpc_amqp_status_to_errno(int status);

/* Opens conn's socket to broker h of url: TLS when url->ssl, with the
 * url's ssl_*_file options, verifying the broker (against ssl_ca_file, else
 * RPC_AMQP_SYSTEM_CA_FILE) when verify, within timeout_ms.  Returns 0, or -errno with a
 * reason an operator can act on in reterr; conn is then left for the caller
 * to destroy. */
int rpc_amqp_open_socket(amqp_connection_state_t conn, const struct rpc_url *url,
    const struct rpc_url_host *h, bool verify, int timeout_ms, struct rpc_err *reterr);

#endif
