/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_url: a transport_url parser that follows oslo's TransportURL.parse()
 * (urlparse, then netloc split on ',', credentials split at the last '@'
 * and the first ':') and impl_rabbit's defaults.  Error texts quote only the
 * scheme and query flags, never any part of the netloc, because a stray '/'
 * in an unencoded password would otherwise land in a log.
 */
#include "rpc_url.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rpc_uuid.h"

#define PORT_PLAIN 5672
#define PORT_SSL   5671

/*
 * Percent-decodes @n bytes at @s into a new string, as Python's unquote()
 * (or unquote_plus() when @plus): malformed escapes stay literal.  A decoded
 * NUL cannot live in a C string: -EINVAL.
 */
static int
pct_decode(const char *s, size_t n, bool plus, char **ret)
{
	char *out;
	size_t i;
	size_t o = 0;

	out = malloc(n + 1);
	if (out == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%' && i + 2 < n && rpc_hex_value(s[i + 1]) >= 0 &&
		    rpc_hex_value(s[i + 2]) >= 0) {
			c = (char)(rpc_hex_value(s[i + 1]) * 16 + rpc_hex_value(s[i + 2]));
			i += 2;
		} else if (plus && c == '+') {
			c = ' ';
		}
		if (c == '\0') {
			free(out);
			return -EINVAL;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	*ret = out;
	return 0;
}

/* Empty text means "not given" (0).  Otherwise 1..65535, digits only. */
static int
parse_port(const char *s, size_t n, int *ret)
{
	int v = 0;
	size_t i;

	if (n > 5)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (n > 0 && (v < 1 || v > 65535))
		return -EINVAL;
	*ret = v;
	return 0;
}

static bool
hostname_ok(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f || c == '[' || c == ']')
			return false;
	}
	return true;
}

static void
free_host(struct rpc_url_host *h)
{
	free(h->user);
	if (h->password != NULL) {
		explicit_bzero(h->password, strlen(h->password));
		free(h->password);
	}
	free(h->host);
}

struct rpc_url *
rpc_url_free(struct rpc_url *url)
{
	size_t i;

	if (url == NULL)
		return NULL;
	for (i = 0; i < url->n_hosts; i++)
		free_host(&url->hosts[i]);
	free(url->hosts);
	free(url->vhost);
	free(url->ssl_ca_file);
	free(url->ssl_cert_file);
	free(url->ssl_key_file);
	free(url);
	return NULL;
}

/* Parses one non-empty netloc entry [s, e) into *h (zeroed by the caller). */
static int
parse_host(const char *s, const char *e, size_t idx, struct rpc_url_host *h, struct rpc_err *reterr)
{
	const char *at = NULL;
	const char *hs = s;
	const char *name;
	const char *p;
	size_t name_len;
	const char *port = NULL;
	size_t port_len = 0;
	int r;

	for (p = s; p < e; p++) {
		if (*p == '@')
			at = p;
	}
	if (at != NULL) {
		const char *colon = memchr(s, ':', (size_t)(at - s));

		r = pct_decode(s, (size_t)((colon != NULL ? colon : at) - s), false, &h->user);
		if (r < 0)
			return rpc_err_set(reterr, r, "invalid user name in host entry %zu", idx);
		if (colon != NULL)
			r = pct_decode(colon + 1, (size_t)(at - colon - 1), false, &h->password);
		else
			r = pct_decode("", 0, false, &h->password);
		if (r < 0)
			return rpc_err_set(reterr, r, "invalid password in host entry %zu", idx);
		hs = at + 1;
	} else {
		h->user = strdup("guest");
		h->password = strdup("guest");
		if (h->user == NULL || h->password == NULL)
			return -ENOMEM;
	}

	if (hs < e && *hs == '[') {
		const char *close = memchr(hs, ']', (size_t)(e - hs));

		if (close == NULL)
			return rpc_err_set(
			    reterr, -EINVAL, "unterminated IPv6 literal in host entry %zu", idx);
		name = hs + 1;
		name_len = (size_t)(close - name);
		if (name_len == 0)
			return rpc_err_set(
			    reterr, -EINVAL, "empty IPv6 literal in host entry %zu", idx);
		if (close + 1 < e) {
			if (close[1] != ':')
				return rpc_err_set(reterr, -EINVAL,
				    "unexpected text after the IPv6 literal in host entry %zu",
				    idx);
			port = close + 2;
			port_len = (size_t)(e - port);
		}
	} else {
		const char *colon = memchr(hs, ':', (size_t)(e - hs));

		name = hs;
		name_len = (size_t)((colon != NULL ? colon : e) - hs);
		if (colon != NULL) {
			port = colon + 1;
			port_len = (size_t)(e - port);
		}
	}
	if (!hostname_ok(name, name_len))
		return rpc_err_set(
		    reterr, -EINVAL, "invalid character in host name of entry %zu", idx);
	if (parse_port(port, port_len, &h->port) < 0)
		return rpc_err_set(reterr, -EINVAL, "invalid port in host entry %zu", idx);

	h->host = name_len > 0 ? strndup(name, name_len) : strdup("localhost");
	if (h->host == NULL)
		return -ENOMEM;
	return 0;
}

static int
add_host(struct rpc_url *u, const char *s, const char *e, struct rpc_err *reterr)
{
	struct rpc_url_host *hosts;
	int r;

	hosts = realloc(u->hosts, (u->n_hosts + 1) * sizeof(*hosts));
	if (hosts == NULL)
		return -ENOMEM;
	u->hosts = hosts;
	memset(&hosts[u->n_hosts], 0, sizeof(*hosts));
	r = parse_host(s, e, u->n_hosts + 1, &hosts[u->n_hosts], reterr);
	u->n_hosts++; /* even on failure, so rpc_url_free() releases the partial entry */
	return r;
}

static int
parse_bool(const char *v, bool *ret)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* The query [s, e): '&'-separated key=value, unquote_plus()ed, blanks dropped. */
static int
parse_query(struct rpc_url *u, const char *s, const char *e, bool *ret_ssl, struct rpc_err *reterr)
{
	while (s < e) {
		const char *amp = memchr(s, '&', (size_t)(e - s));
		const char *end = amp != NULL ? amp : e;
		const char *eq = memchr(s, '=', (size_t)(end - s));
		char *key = NULL;
		char *val = NULL;
		char **slot = NULL;
		int r = 0;

		if (eq != NULL && eq + 1 < end) {
			r = pct_decode(s, (size_t)(eq - s), true, &key);
			if (r == 0)
				r = pct_decode(eq + 1, (size_t)(end - eq - 1), true, &val);
			if (r == -EINVAL)
				rpc_err_set(reterr, r, "NUL byte in a query option");
		}
		if (r == 0 && key != NULL) {
			if (strcmp(key, "ssl") == 0) {
				if (parse_bool(val, ret_ssl) < 0)
					r = rpc_err_set(reterr, -EINVAL,
					    "invalid ssl option \"%.16s\" (expected 1/0, "
					    "true/false, "
					    "yes/no)",
					    val);
			} else if (strcmp(key, "ssl_ca_file") == 0) {
				slot = &u->ssl_ca_file;
			} else if (strcmp(key, "ssl_cert_file") == 0) {
				slot = &u->ssl_cert_file;
			} else if (strcmp(key, "ssl_key_file") == 0) {
				slot = &u->ssl_key_file;
			}
			if (slot != NULL) {
				free(*slot);
				*slot = val;
				val = NULL;
			}
		}
		free(key);
		free(val);
		if (r < 0)
			return r;
		s = amp != NULL ? amp + 1 : e;
	}
	return 0;
}

static int
check_scheme(const char *url, size_t n, bool *ret_ssl, struct rpc_err *reterr)
{
	size_t i;

	if (n == 4 && strncasecmp(url, "amqp", 4) == 0) {
		*ret_ssl = false;
		return 0;
	}
	if (n == 6 && strncasecmp(url, "rabbit", 6) == 0) {
		*ret_ssl = false;
		return 0;
	}
	if (n == 5 && strncasecmp(url, "amqps", 5) == 0) {
		*ret_ssl = true;
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)url[i]) && url[i] != '+' && url[i] != '-' &&
		    url[i] != '.')
			return rpc_err_set(reterr, -EINVAL, "transport URL has no valid scheme");
	}
	return rpc_err_set(reterr, -EINVAL,
	    "unsupported transport URL scheme \"%.*s\" (expected rabbit, amqp or amqps)",
	    (int)(n > 32 ? 32 : n), url);
}

int
rpc_url_parse(const char *url, struct rpc_url **ret_url, struct rpc_err *reterr)
{
	const char *sep;
	const char *netloc;
	const char *netloc_end;
	const char *p;
	struct rpc_url *u;
	bool scheme_ssl = false;
	bool query_ssl = false;
	size_t i;
	int r;

	if (url == NULL)
		return rpc_err_set(reterr, -EINVAL, "no transport URL");
	sep = strstr(url, "://");
	if (sep == NULL || sep == url)
		return rpc_err_set(
		    reterr, -EINVAL, "transport URL has no scheme (expected rabbit://...)");
	r = check_scheme(url, (size_t)(sep - url), &scheme_ssl, reterr);
	if (r < 0)
		return r;

	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;

	netloc = sep + 3;
	netloc_end = netloc + strcspn(netloc, "/?#");
	for (p = netloc; p < netloc_end;) {
		const char *comma = memchr(p, ',', (size_t)(netloc_end - p));
		const char *e = comma != NULL ? comma : netloc_end;

		if (e > p) {
			r = add_host(u, p, e, reterr);
			if (r < 0)
				goto fail;
		}
		p = comma != NULL ? comma + 1 : netloc_end;
	}
	if (u->n_hosts == 0) {
		r = add_host(u, "", "", reterr);
		if (r < 0)
			goto fail;
	}

	p = netloc_end;
	if (*p == '/') {
		size_t n = strcspn(p, "?#");

		r = pct_decode(p + 1, n - 1, false, &u->vhost);
		if (r < 0) {
			rpc_err_set(reterr, r, "invalid virtual host in the transport URL");
			goto fail;
		}
		p += n;
	}
	if (u->vhost == NULL || u->vhost[0] == '\0') {
		free(u->vhost);
		u->vhost = strdup("/");
		if (u->vhost == NULL) {
			r = -ENOMEM;
			goto fail;
		}
	}
	if (*p == '?') {
		r = parse_query(u, p + 1, p + 1 + strcspn(p + 1, "#"), &query_ssl, reterr);
		if (r < 0)
			goto fail;
	}

	u->ssl = scheme_ssl || query_ssl;
	for (i = 0; i < u->n_hosts; i++) {
		if (u->hosts[i].port == 0)
			u->hosts[i].port = u->ssl ? PORT_SSL : PORT_PLAIN;
	}
	*ret_url = u;
	return 0;
fail:
	if (r == -ENOMEM)
		rpc_err_set(reterr, r, "out of memory parsing the transport URL");
	rpc_url_free(u);
	return r;
}
