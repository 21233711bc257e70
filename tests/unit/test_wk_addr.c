/* SPDX-License-Identifier: Apache-2.0 */
/* wk_addr: only host names and IP addresses reach URIs and routing keys. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "wk_addr.h"

Test(wk_addr, host_names_and_addresses_pass)
{
	static const char *good[] = {"host2", "compute-7.example.org", "a", "1host", "127.0.0.3",
	    "HostB", "xn--bcher-kva.example", "::1", "[::1]", "fd00::3", "fe80::1"};
	struct wk_err err = {{0}};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(
		    wk_addr_check(good[i], "dest", true, &err), 0, "%s: %s", good[i], err.msg);
}

Test(wk_addr, uri_and_routing_key_syntax_is_refused)
{
	static const char *bad[] = {"hostB/system?no_verify=1#", "", "host b", "host_b", "-host",
	    "host-", "a..b", "host.", "user@host", "host:16509", "[::1]:16509", "1.2.3.999",
	    "1.2.3", "[127.0.0.1]", "[::1", "host#", "host\n",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b"};
	struct wk_err err = {{0}};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		cr_assert_eq(
		    wk_addr_check(bad[i], "dest", true, &err), -EINVAL, "accepted '%s'", bad[i]);
		cr_assert(strstr(err.msg, "dest '") == err.msg, "%s", err.msg);
	}
	cr_assert_eq(wk_addr_check("::1", "dest", false, NULL), -EINVAL);
	cr_assert_eq(wk_addr_check(NULL, "dest", true, NULL), -EINVAL);
}

Test(wk_addr, a_host_name_of_253_characters_passes_254_does_not)
{
	char name[260];

	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[253] = '\0';
	cr_assert_eq(wk_addr_check(name, "dest", true, NULL), 0);
	name[253] = 'a';
	name[254] = '\0';
	cr_assert_eq(wk_addr_check(name, "dest", true, NULL), -EINVAL);
}

Test(wk_addr, ipv6_is_bracketed_in_uris)
{
	char out[WK_ADDR_MAX + 3];

	cr_assert_eq(wk_addr_uri_host("fd00::3", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "[fd00::3]");
	cr_assert_eq(wk_addr_uri_host("[fd00::3]", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "[fd00::3]");
	cr_assert_eq(wk_addr_uri_host("127.0.0.3", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "127.0.0.3");
	cr_assert_eq(wk_addr_uri_host("host2", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "host2");
	cr_assert_eq(wk_addr_uri_host("host2", out, 3), -ENAMETOOLONG);
}
