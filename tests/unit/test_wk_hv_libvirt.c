/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libvirt backend's connections to other hosts: which failures mean
 * the kept connection is dead (made once more on a fresh one) and which are
 * the other daemon's definite answer; and, on libvirt's in-process test
 * driver (test:///default, no daemon), that one connection per URI is kept
 * across calls, kept after a "not there", and closed with the backend.
 */
#include <errno.h>

#include <criterion/criterion.h>
#include <libvirt/virterror.h>

#include "wk_hv.h"
#include "wk_hv_backend.h"
#include "wk_hv_libvirt_priv.h"

/* The test driver's one running domain, "test". */
#define TEST_URI  "test:///default"
#define TEST_UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"
#define NO_UUID   "0b4b8a8e-0000-4000-8000-000000000001"

Test(wk_hv_libvirt, no_such_domain_is_an_answer_even_on_a_dying_connection)
{
	cr_assert_not(wk_hv_libvirt_conn_dead(
	    VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, "Domain not found: no domain with matching uuid", 1));
	cr_assert_not(wk_hv_libvirt_conn_dead(VIR_ERR_NO_DOMAIN, VIR_FROM_REMOTE, NULL, 0));
	cr_assert_not(wk_hv_libvirt_conn_dead(VIR_ERR_NO_DOMAIN, VIR_FROM_DOMAIN, NULL, -1));
}

/* What libvirt 9.0's client reports when the daemon behind the connection
 * went away (virnetsocket.c, virnetclient.c). */
Test(wk_hv_libvirt, a_daemon_that_went_away_means_dead)
{
	cr_assert(wk_hv_libvirt_conn_dead(VIR_ERR_SYSTEM_ERROR, VIR_FROM_RPC,
	    "End of file while reading data: Input/output error", 1));
	cr_assert(wk_hv_libvirt_conn_dead(
	    VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, "client socket is closed", 1));
	cr_assert(wk_hv_libvirt_conn_dead(
	    VIR_ERR_SYSTEM_ERROR, VIR_FROM_RPC, "Cannot write data: Broken pipe", 1));
	cr_assert(wk_hv_libvirt_conn_dead(VIR_ERR_RPC, VIR_FROM_RPC, NULL, -1));
	cr_assert(wk_hv_libvirt_conn_dead(VIR_ERR_NO_CONNECT, VIR_FROM_REMOTE, NULL, -1));
	cr_assert(wk_hv_libvirt_conn_dead(VIR_ERR_INVALID_CONN, VIR_FROM_NONE, NULL, -1));
	/* the message alone, whatever the code and domain it came with */
	cr_assert(wk_hv_libvirt_conn_dead(
	    VIR_ERR_INTERNAL_ERROR, VIR_FROM_REMOTE, "client socket is closed", -1));
	cr_assert(wk_hv_libvirt_conn_dead(
	    VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, "End of file while reading data", 1));
}

Test(wk_hv_libvirt, a_connection_libvirt_calls_not_alive_is_dead)
{
	cr_assert(wk_hv_libvirt_conn_dead(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "whatever", 0));
	cr_assert(wk_hv_libvirt_conn_dead(VIR_ERR_OK, VIR_FROM_NONE, NULL, 0));
}

Test(wk_hv_libvirt, the_other_daemons_own_failures_are_answers)
{
	cr_assert_not(wk_hv_libvirt_conn_dead(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
	    "Requested operation is not valid: domain is not running", 1));
	cr_assert_not(wk_hv_libvirt_conn_dead(
	    VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU, "cannot acquire state change lock", 1));
	cr_assert_not(wk_hv_libvirt_conn_dead(VIR_ERR_AUTH_FAILED, VIR_FROM_AUTH, NULL, 1));
	cr_assert_not(wk_hv_libvirt_conn_dead(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, NULL, 1));
	cr_assert_not(wk_hv_libvirt_conn_dead(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, NULL, -1));
}

static void *priv;

static void
setup(void)
{
	struct wk_err err = {{0}};

	cr_assert_eq(wk_hv_libvirt_ops.open(TEST_URI, &priv, &err), 0, "%s", err.msg);
}

static void
teardown(void)
{
	if (priv != NULL)
		wk_hv_libvirt_ops.close(priv);
	priv = NULL;
}

Test(wk_hv_libvirt, keeps_one_connection_per_other_host_across_calls, .init = setup,
    .fini = teardown)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};

	cr_assert_eq(wk_hv_libvirt_remote_kept(priv), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(
		    wk_hv_libvirt_ops.remote_domain_info(priv, TEST_URI, TEST_UUID, &info, &err), 0,
		    "%s", err.msg);
		cr_assert_eq(info.state, WK_HV_STATE_RUNNING);
		cr_assert_not(info.reconnected);
		cr_assert_eq(wk_hv_libvirt_remote_kept(priv), 1);
	}
	/* a second URI gets its own */
	cr_assert_eq(
	    wk_hv_libvirt_ops.remote_domain_info(priv, TEST_URI "?other", TEST_UUID, &info, &err),
	    0, "%s", err.msg);
	cr_assert_eq(wk_hv_libvirt_remote_kept(priv), 2);
}

/* After a failed migrate call the destination is read on a fresh
 * connection: forgetting closes the kept one, only that URI's. */
Test(wk_hv_libvirt, forgetting_closes_only_that_hosts_kept_connection, .init = setup,
    .fini = teardown)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};

	cr_assert_eq(wk_hv_libvirt_ops.remote_forget(priv, TEST_URI), 0, "nothing kept yet");
	cr_assert_eq(wk_hv_libvirt_ops.remote_domain_info(priv, TEST_URI, TEST_UUID, &info, &err),
	    0, "%s", err.msg);
	cr_assert_eq(
	    wk_hv_libvirt_ops.remote_domain_info(priv, TEST_URI "?other", TEST_UUID, &info, &err),
	    0, "%s", err.msg);
	cr_assert_eq(wk_hv_libvirt_remote_kept(priv), 2);
	cr_assert_eq(wk_hv_libvirt_ops.remote_forget(priv, TEST_URI), 1);
	cr_assert_eq(wk_hv_libvirt_remote_kept(priv), 1, "the other host's is kept");
	/* the next read opens a fresh one, which is then kept */
	cr_assert_eq(wk_hv_libvirt_ops.remote_domain_info(priv, TEST_URI, TEST_UUID, &info, &err),
	    0, "%s", err.msg);
	cr_assert_not(info.reconnected, "a fresh read is not a retry");
	cr_assert_eq(wk_hv_libvirt_remote_kept(priv), 2);
}

Test(wk_hv_libvirt, not_there_is_answered_once_and_keeps_the_connection, .init = setup,
    .fini = teardown)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};

	cr_assert_eq(wk_hv_libvirt_ops.remote_domain_info(priv, TEST_URI, TEST_UUID, &info, &err),
	    0, "%s", err.msg);
	cr_assert_eq(
	    wk_hv_libvirt_ops.remote_domain_info(priv, TEST_URI, NO_UUID, &info, &err), -ENOENT);
	cr_assert(strstr(err.msg, "find domain") != NULL, "%s", err.msg);
	cr_assert(strstr(err.msg, "fresh connection") == NULL, "retried: %s", err.msg);
	cr_assert_eq(wk_hv_libvirt_remote_kept(priv), 1);
}

Test(wk_hv_libvirt, an_unreachable_host_keeps_nothing, .init = setup, .fini = teardown)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};

	/* 127.0.0.1:9 (discard): refused at once */
	cr_assert_lt(wk_hv_libvirt_ops.remote_domain_info(
	                 priv, "qemu+tcp://127.0.0.1:9/system", TEST_UUID, &info, &err),
	    0);
	cr_assert_eq(wk_hv_libvirt_remote_kept(priv), 0);
}

/* Through the facade: the kept connections are closed with it (LeakSanitizer
 * fails this test when they are not). */
Test(wk_hv_libvirt, closing_the_facade_closes_the_kept_connections)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};
	wk_hv *hv;

	cr_assert_eq(wk_hv_open(&wk_hv_libvirt_ops, TEST_URI, &hv, &err), 0, "%s", err.msg);
	cr_assert_eq(
	    wk_hv_remote_domain_info(hv, TEST_URI, TEST_UUID, &info, &err), 0, "%s", err.msg);
	cr_assert_eq(
	    wk_hv_remote_domain_info(hv, TEST_URI, TEST_UUID, &info, &err), 0, "%s", err.msg);
	hv = wk_hv_close(hv);
	cr_assert_null(hv);
}
