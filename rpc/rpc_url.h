/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_url: oslo.messaging transport_url parsing,
 *   rabbit://user:pass@h1:5672,user:pass@h2:5672/vhost?ssl=1&ssl_ca_file=...
 * with oslo's semantics (not rabbitmq-c's): an empty or missing path is the
 * vhost "/".  Pure: no I/O, no globals, never logs; any thread.
 */
#ifndef RPC_URL_H
#define RPC_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc_err.h"

/* One broker of the failover list; all strings owned by the rpc_url. */
struct rpc_url_host {
	char *user;     /* percent-decoded; "guest" when the entry had no credentials */
	char *password; /* percent-decoded; "guest" likewise, "" for "user@host" */
	char *host;     /* name or address, IPv6 without the brackets; "localhost" if empty */
	int port;       /* 5672, or 5671 with ssl, when not given */
};

struct rpc_url {
	size_t n_hosts; /* at least one */
	struct rpc_url_host *hosts;
	char *vhost; /* percent-decoded; "" path or no path -> "/" */
	bool ssl;    /* scheme amqps://, or query ssl=1|true|yes|on */
	char *ssl_ca_file;
	char *ssl_cert_file;
	char *ssl_key_file; /* from the query, percent-decoded, or NULL */
};

/*
 * Parses @url (schemes rabbit, amqp, amqps, case-insensitive).  Hosts are
 * comma-separated; each is [user[:password]@]host[:port] with IPv6 literals
 * in [].  Empty entries are skipped as oslo does; no host at all means one
 * guest@localhost.  A host without credentials does not inherit another
 * host's: it gets guest/guest.  Query options other than ssl, ssl_ca_file,
 * ssl_cert_file and ssl_key_file are ignored.  Returns 0 and a new rpc_url
 * in *ret_url (free with rpc_url_free), -EINVAL with a message naming the
 * problem (never the password), or -ENOMEM.
 */
int rpc_url_parse(const char *url, struct rpc_url **ret_url, struct rpc_err *reterr);

/* NULL-safe; wipes the passwords; returns NULL. */
struct rpc_url *rpc_url_free(struct rpc_url *url);

#endif /* RPC_URL_H */
