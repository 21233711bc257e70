/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_amqp_tls.c: part of the AMQP adapter (see rpc_amqp_priv.h).  Opens
 * the socket of one broker, plain TCP or TLS, and turns every way that can
 * fail (refused, timed out, untrusted certificate, wrong name, unreadable
 * files) into -errno and words an operator can act on.
 */
#include <sys/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "rpc_amqp_priv.h"

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
socket_failed(int timeout_ms, int st, struct rpc_err *reterr)
{
	if (st == AMQP_STATUS_SOCKET_ERROR)
		return rpc_err_set(
		    reterr, -ECONNREFUSED, "cannot open a TCP connection (refused or unreachable)");
	if (st == AMQP_STATUS_TIMEOUT)
		return rpc_err_set(reterr, -ETIMEDOUT, "no answer within %d ms", timeout_ms);
	return rpc_err_set(reterr, rpc_amqp_status_to_errno(st), "%s", amqp_error_string2(st));
}

int
rpc_amqp_open_socket(amqp_connection_state_t conn, const struct rpc_url *url,
    const struct rpc_url_host *h, bool verify, int timeout_ms, struct rpc_err *reterr)
{
	const char *ca = url->ssl_ca_file != NULL ? url->ssl_ca_file : RPC_AMQP_SYSTEM_CA_FILE;
	struct timeval tv;
	amqp_socket_t *sock;
	int st;

	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	if (!url->ssl) {
		sock = amqp_tcp_socket_new(conn);
		if (sock == NULL)
			return rpc_err_set(reterr, -ENOMEM, "cannot create socket");
		st = amqp_socket_open_noblock(sock, h->host, h->port, &tv);
		return st == AMQP_STATUS_OK ? 0 : socket_failed(timeout_ms, st, reterr);
	}
	sock = amqp_ssl_socket_new(conn);
	if (sock == NULL)
		return rpc_err_set(reterr, -ENOMEM, "cannot create TLS socket");
	/* oslo (py-amqp) verifies nothing without ssl_ca_file and the chain only
	 * with it; we verify the chain against ssl_ca_file or the system store,
	 * and the name, except for IP literals, which rabbitmq-c 0.11 cannot
	 * match against IP SANs.  Only ssl_verify = false turns this off. */
	amqp_ssl_socket_set_verify_peer(sock, verify);
	amqp_ssl_socket_set_verify_hostname(sock, verify && !is_ip_literal(h->host));
	if (verify && amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK)
		return rpc_err_set(reterr, -EINVAL, "TLS: cannot load %s '%s'",
		    url->ssl_ca_file != NULL ? "CA file" : "the system CA store (set ssl_ca_file)",
		    ca);
	if (url->ssl_cert_file != NULL &&
	    amqp_ssl_socket_set_key(sock, url->ssl_cert_file,
	        url->ssl_key_file != NULL ? url->ssl_key_file : url->ssl_cert_file) !=
	        AMQP_STATUS_OK)
		return rpc_err_set(reterr, -EINVAL,
		    "TLS: cannot load client certificate '%s' / key '%s'", url->ssl_cert_file,
		    url->ssl_key_file != NULL ? url->ssl_key_file : url->ssl_cert_file);
	st = amqp_socket_open_noblock(sock, h->host, h->port, &tv);
	if (st == AMQP_STATUS_OK)
		return 0;
	if (st == AMQP_STATUS_SOCKET_ERROR || st == AMQP_STATUS_TIMEOUT)
		return socket_failed(timeout_ms, st, reterr);
	if (verify && url->ssl_ca_file != NULL)
		return rpc_err_set(reterr, rpc_amqp_status_to_errno(st), "TLS: %s (CA file '%s')",
		    tls_reason(st), url->ssl_ca_file);
	if (verify && st == AMQP_STATUS_SSL_PEER_VERIFY_FAILED)
		return rpc_err_set(reterr, rpc_amqp_status_to_errno(st),
		    "TLS: the broker's certificate is not signed by a CA of the system store '%s' "
		    "(set ssl_ca_file to the broker's CA, or ssl_verify = false to not verify it)",
		    ca);
	if (verify)
		return rpc_err_set(reterr, rpc_amqp_status_to_errno(st),
		    "TLS: %s (system CA store '%s'; no ssl_ca_file)", tls_reason(st), ca);
	return rpc_err_set(reterr, rpc_amqp_status_to_errno(st), "TLS: %s", tls_reason(st));
}
