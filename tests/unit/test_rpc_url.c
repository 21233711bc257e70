/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for rpc_url: oslo transport_url syntax and defaults. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rpc_url.h"

static struct rpc_url *
parse_ok(const char *s)
{
	struct rpc_err err = {{0}};
	struct rpc_url *u = NULL;
	int r = rpc_url_parse(s, &u, &err);

	cr_assert_eq(r, 0, "%s: %d %s", s, r, err.msg);
	cr_assert_geq(u->n_hosts, 1);
	return u;
}

static void
assert_host(
    const struct rpc_url_host *h, const char *user, const char *pw, const char *host, int port)
{
	cr_assert_str_eq(h->user, user);
	cr_assert_str_eq(h->password, pw);
	cr_assert_str_eq(h->host, host);
	cr_assert_eq(h->port, port);
}

Test(rpc_url, parses_single_host_with_defaults)
{
	struct rpc_url *u = parse_ok("rabbit://nova:nova@127.0.0.1:5672/");

	cr_assert_eq(u->n_hosts, 1);
	assert_host(&u->hosts[0], "nova", "nova", "127.0.0.1", 5672);
	cr_assert_str_eq(u->vhost, "/");
	cr_assert_not(u->ssl);
	cr_assert_null(u->ssl_ca_file);
	cr_assert_null(u->ssl_cert_file);
	cr_assert_null(u->ssl_key_file);
	cr_assert_null(rpc_url_free(u));
	cr_assert_null(rpc_url_free(NULL));
}

Test(rpc_url, parses_multi_host_failover_list)
{
	struct rpc_url *u = parse_ok("rabbit://a:pa@h1:5672,b:pb@h2:5673,h3,,c:pc@h4/nova");

	cr_assert_eq(u->n_hosts, 4);
	assert_host(&u->hosts[0], "a", "pa", "h1", 5672);
	assert_host(&u->hosts[1], "b", "pb", "h2", 5673);
	/* no credentials: no inheritance from the neighbours, guest/guest */
	assert_host(&u->hosts[2], "guest", "guest", "h3", 5672);
	assert_host(&u->hosts[3], "c", "pc", "h4", 5672);
	cr_assert_str_eq(u->vhost, "nova");
	rpc_url_free(u);
}

Test(rpc_url, vhost_follows_oslo_not_rabbitmq_c)
{
	static const struct {
		const char *url;
		const char *vhost;
	} cases[] = {
	    {"rabbit://h", "/"},
	    {"rabbit://h/", "/"},
	    {"rabbit://h/%2f", "/"},
	    {"rabbit://h/%2F", "/"},
	    {"rabbit://h/myvhost", "myvhost"},
	    {"rabbit://h/my%20vhost?ssl=0", "my vhost"},
	    {"rabbit://h//", "/"},
	    {"rabbit://h/a+b", "a+b"},
	    {"rabbit://h/bad%zz", "bad%zz"},
	    {"rabbit://h?ssl=0", "/"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rpc_url *u = parse_ok(cases[i].url);

		cr_assert_str_eq(u->vhost, cases[i].vhost, "%s", cases[i].url);
		rpc_url_free(u);
	}
}

Test(rpc_url, missing_parts_get_defaults)
{
	struct rpc_url *u = parse_ok("rabbit://");

	cr_assert_eq(u->n_hosts, 1);
	assert_host(&u->hosts[0], "guest", "guest", "localhost", 5672);
	cr_assert_str_eq(u->vhost, "/");
	rpc_url_free(u);

	u = parse_ok("amqp:///v");
	assert_host(&u->hosts[0], "guest", "guest", "localhost", 5672);
	cr_assert_str_eq(u->vhost, "v");
	rpc_url_free(u);

	u = parse_ok("rabbit://u:p@:5673");
	assert_host(&u->hosts[0], "u", "p", "localhost", 5673);
	rpc_url_free(u);

	u = parse_ok("rabbit://user@h:");
	assert_host(&u->hosts[0], "user", "", "h", 5672);
	rpc_url_free(u);

	u = parse_ok("RABBIT://h");
	assert_host(&u->hosts[0], "guest", "guest", "h", 5672);
	rpc_url_free(u);
}

Test(rpc_url, ssl_via_amqps_and_query)
{
	struct rpc_url *u = parse_ok("amqps://u:p@h1,u:p@h2:5000/");

	cr_assert(u->ssl);
	cr_assert_eq(u->hosts[0].port, 5671);
	cr_assert_eq(u->hosts[1].port, 5000);
	rpc_url_free(u);

	u = parse_ok("rabbit://u:p@h/v?ssl=1&ssl_ca_file=/etc/ssl/ca%20file.pem"
	             "&ssl_cert_file=/c.pem&ssl_key_file=/k.pem&heartbeat=30");
	cr_assert(u->ssl);
	cr_assert_eq(u->hosts[0].port, 5671);
	cr_assert_str_eq(u->vhost, "v");
	cr_assert_str_eq(u->ssl_ca_file, "/etc/ssl/ca file.pem");
	cr_assert_str_eq(u->ssl_cert_file, "/c.pem");
	cr_assert_str_eq(u->ssl_key_file, "/k.pem");
	rpc_url_free(u);

	u = parse_ok("rabbit://h?ssl=true");
	cr_assert(u->ssl);
	rpc_url_free(u);
	u = parse_ok("rabbit://h?ssl=YES");
	cr_assert(u->ssl);
	rpc_url_free(u);
	u = parse_ok("rabbit://h?ssl=0");
	cr_assert_not(u->ssl);
	cr_assert_eq(u->hosts[0].port, 5672);
	rpc_url_free(u);
	u = parse_ok("amqps://h?ssl=false");
	cr_assert(u->ssl);
	rpc_url_free(u);
}

Test(rpc_url, ipv6_literals)
{
	struct rpc_url *u = parse_ok("rabbit://u:p@[::1]:5673,[fe80::1%25eth0],u:p@[::2]/");

	cr_assert_eq(u->n_hosts, 3);
	assert_host(&u->hosts[0], "u", "p", "::1", 5673);
	assert_host(&u->hosts[1], "guest", "guest", "fe80::1%25eth0", 5672);
	assert_host(&u->hosts[2], "u", "p", "::2", 5672);
	rpc_url_free(u);
}

Test(rpc_url, percent_encoded_credentials)
{
	struct rpc_url *u = parse_ok("rabbit://us%40er:p%40ss%3Aw%2Frd%25@h:5672/");

	assert_host(&u->hosts[0], "us@er", "p@ss:w/rd%", "h", 5672);
	rpc_url_free(u);

	/* credentials split at the last '@' and the first ':', as oslo */
	u = parse_ok("rabbit://u:a:b@c@h");
	assert_host(&u->hosts[0], "u", "a:b@c", "h", 5672);
	rpc_url_free(u);
}

Test(rpc_url, rejects_bad_urls_without_echoing_passwords)
{
	static const char *const bad[] = {
	    NULL,
	    "",
	    "h1:5672",
	    "://h",
	    "kombu+memory://h",
	    "http://h",
	    "rabbit://u:s3cret@h:notaport",
	    "rabbit://u:s3cret@h:0",
	    "rabbit://u:s3cret@h:65536",
	    "rabbit://u:s3cret@h:123456",
	    "rabbit://u:s3cret@[::1",
	    "rabbit://u:s3cret@[::1]x",
	    "rabbit://u:s3cret@[]:5672",
	    "rabbit://u:s3cret@::1:5672",
	    "rabbit://u:s3cret%00@h",
	    "rabbit://u:s3cr/et@h",
	    "rabbit://h?ssl=maybe",
	    "rabbit://h/v%00",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rpc_err err = {{0}};
		struct rpc_url *u = NULL;

		cr_assert_eq(rpc_url_parse(bad[i], &u, &err), -EINVAL, "case %zu: %s", i,
		    bad[i] != NULL ? bad[i] : "(null)");
		cr_assert_null(u);
		cr_assert_neq(err.msg[0], '\0', "case %zu", i);
		cr_assert_null(strstr(err.msg, "s3cr"), "case %zu leaks: %s", i, err.msg);
	}
}

Test(rpc_url, error_messages_name_the_problem)
{
	struct rpc_err err = {{0}};
	struct rpc_url *u = NULL;

	cr_assert_eq(rpc_url_parse("kafka://h", &u, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "kafka"), "%s", err.msg);
	cr_assert_eq(rpc_url_parse("rabbit://h1,h2:x", &u, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "port in host entry 2"), "%s", err.msg);
	cr_assert_eq(rpc_url_parse("rabbit://[::1", &u, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "IPv6"), "%s", err.msg);
	cr_assert_eq(rpc_url_parse("rabbit://h?ssl=maybe", &u, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "ssl"), "%s", err.msg);
}
