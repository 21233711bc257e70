/* SPDX-License-Identifier: Apache-2.0 */
/* wk_addr: host names and IP addresses, checked before they reach a URI or
 * a routing key. */
#include "wk_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "wk_utf8.h"

static bool
is_ipv4(const char *s)
{
	struct in_addr a;

	return inet_pton(AF_INET, s, &a) == 1;
}

/* Bare or in brackets; out gets the bare text. */
static bool
is_ipv6(const char *s, char bare[WK_ADDR_MAX + 1])
{
	struct in6_addr a;
	size_t n = strlen(s);

	if (n == 0 || n > WK_ADDR_MAX)
		return false;
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']')
			return false;
		memcpy(bare, s + 1, n - 2);
		bare[n - 2] = '\0';
	} else {
		memcpy(bare, s, n + 1);
	}
	return inet_pton(AF_INET6, bare, &a) == 1;
}

static bool
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 1123 section 2.1 (labels may start with a digit); NULL or why not. */
static const char *
host_name_error(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n == 0)
		return "is empty";
	if (n > WK_ADDR_MAX)
		return "is longer than 253 characters";
	for (size_t i = 0; i <= n; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0)
				return "has an empty label";
			if (s[i - 1] == '-')
				return "has a label ending with '-'";
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-')
			return "holds a character other than letters, digits, '-' and '.'";
		if (label == 0 && c == '-')
			return "has a label starting with '-'";
		if (++label > 63)
			return "has a label longer than 63 characters";
	}
	return NULL;
}

int
wk_addr_check(const char *s, const char *what, bool allow_ipv6, struct wk_err *reterr)
{
	char bare[WK_ADDR_MAX + 1];
	const char *why;
	bool all_numeric = true;

	if (s == NULL)
		return wk_err_set(reterr, -EINVAL, "%s is missing", what);
	if (is_ipv4(s) || (allow_ipv6 && is_ipv6(s, bare)))
		return 0;
	why = host_name_error(s);
	/* "1.2.3.999" is a broken address, not a name (RFC 1123: the top
	 * label is never all-numeric). */
	for (const char *p = s; why == NULL && *p != '\0'; p++)
		if (*p != '.' && (*p < '0' || *p > '9'))
			all_numeric = false;
	if (why == NULL && all_numeric)
		why = "is not a valid IPv4 address";
	if (why == NULL)
		return 0;
	/* A prefix: the value came from a peer; enough to recognise it. */
	return wk_err_set(reterr, -EINVAL, "%s '%.*s' is not a host name or IP address: it %s",
	    what, (int)wk_utf8_prefix(s, 64), s, why);
}

int
wk_addr_uri_host(const char *s, char *out, size_t size)
{
	char bare[WK_ADDR_MAX + 1];
	int n;

	if (s[0] != '[' && strchr(s, ':') != NULL && is_ipv6(s, bare))
		n = snprintf(out, size, "[%s]", s);
	else
		n = snprintf(out, size, "%s", s);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}
