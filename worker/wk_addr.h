/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_addr: what a peer may name as a host.  A live_migration cast's dest
 * becomes an AMQP routing key (compute.<dest>) and, like the destination's
 * target_connect_addr, the host part of libvirt URIs; so only a host name
 * (RFC 1123 labels) or an IP address is let through, never URI syntax.
 * Pure; any thread; never logs.
 */
#ifndef WK_ADDR_H
#define WK_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "wk_util.h"

/* Largest host text accepted (a DNS name is at most 253 characters). */
#define WK_ADDR_MAX 253

/*
 * A host name: dot-separated labels of 1-63 letters, digits and '-', no
 * label starting or ending with '-', 253 characters at most, a trailing
 * dot refused; or an IPv4 address (dotted quad); or, when allow_ipv6, an
 * IPv6 address, bare or in brackets.  Returns 0, or -EINVAL with reterr
 * saying why (what names the value, e.g. "dest").
 */
int wk_addr_check(const char *s, const char *what, bool allow_ipv6, struct wk_err *reterr);

/*
 * Writes the host part of a URI for s (which passed wk_addr_check): an
 * IPv6 address in brackets, anything else as it is, as nova's libvirt
 * driver does.  Returns 0 or -ENAMETOOLONG.
 */
int wk_addr_uri_host(const char *s, char *out, size_t size);

#endif
