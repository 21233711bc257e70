/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wk_hv facade: optional verbs, and the bound on the main thread's calls
 * (a libvirtd that stops answering must not stop the event loop).
 */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "fake_hv.h"
#include "wk_hv.h"

#define SRC  "fake://host1"
#define UUID "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5f"

static wk_hv *hv;

static void
setup(void)
{
	struct wk_err err = {{0}};

	fake_hv_reset();
	fake_hv_add_domain(SRC, UUID, WK_HV_STATE_RUNNING, 262144, true);
	cr_assert_eq(wk_hv_open(&fake_hv_ops, SRC, &hv, &err), 0, "%s", err.msg);
}

static void
teardown(void)
{
	fake_hv_unblock();
	hv = wk_hv_close(hv);
}

TestSuite(wk_hv, .init = setup, .fini = teardown, .timeout = 20);

Test(wk_hv, forwards_to_the_backend)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};

	cr_assert_str_eq(wk_hv_backend_name(hv), "fake");
	cr_assert_eq(wk_hv_domain_info(hv, UUID, &info, &err), 0);
	cr_assert_eq(info.state, WK_HV_STATE_RUNNING);
	cr_assert_eq(wk_hv_suspend(hv, UUID, &err), 0);
	cr_assert_eq(wk_hv_domain_info(hv, UUID, &info, &err), 0);
	cr_assert_eq(info.state, WK_HV_STATE_PAUSED);
	cr_assert_eq(wk_hv_domain_info(hv, "nope", &info, &err), -ENOENT);
	cr_assert(strstr(err.msg, "Domain not found") != NULL, "%s", err.msg);
}

Test(wk_hv, a_backend_without_kept_connections_has_none_to_forget)
{
	cr_assert_eq(wk_hv_remote_forget(hv, "fake://host2"), 0);
}

Test(wk_hv, bounded_calls_give_up_on_a_stopped_libvirtd_and_recover)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};
	uint64_t t0;

	/* Margins wide enough for a loaded machine: a bound of 1 s; "at once"
	 * is well under it, the blocked call is given up at about it. */
	cr_assert_eq(wk_hv_bound_calls(hv, 1000), 0);
	cr_assert_eq(wk_hv_domain_info(hv, UUID, &info, &err), 0, "bounded calls still work");

	fake_hv_block("suspend");
	t0 = wk_now_ms();
	cr_assert_eq(wk_hv_suspend(hv, UUID, &err), -ETIMEDOUT);
	cr_assert_lt(wk_now_ms() - t0, 5000, "the caller waited %llu ms",
	    (unsigned long long)(wk_now_ms() - t0));
	cr_assert(strstr(err.msg, "did not answer") != NULL, "%s", err.msg);

	/* The stuck call still holds the executor: the next fails at once. */
	t0 = wk_now_ms();
	cr_assert_eq(wk_hv_domain_info(hv, UUID, &info, &err), -ETIMEDOUT);
	cr_assert_lt(wk_now_ms() - t0, 500);
	cr_assert(strstr(err.msg, "earlier call") != NULL, "%s", err.msg);

	/* libvirtd answers again: the stuck call completes, calls work again. */
	fake_hv_unblock();
	for (int i = 0; i < 100 && wk_hv_domain_info(hv, UUID, &info, &err) != 0; i++)
		usleep(10000);
	cr_assert_eq(wk_hv_domain_info(hv, UUID, &info, &err), 0, "%s", err.msg);
	cr_assert_eq(info.state, WK_HV_STATE_PAUSED, "the late suspend did happen");
}

static void *
other_thread(void *arg)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};

	(void)arg;
	return (void *)(intptr_t)wk_hv_domain_info(hv, UUID, &info, &err);
}

Test(wk_hv, only_the_bounding_thread_is_bounded)
{
	pthread_t t;
	void *r;

	cr_assert_eq(wk_hv_bound_calls(hv, 50), 0);
	cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
	cr_assert_eq(pthread_join(t, &r), 0);
	cr_assert_eq((intptr_t)r, 0);
	cr_assert_geq(fake_hv_calls("domain_info", UUID), 1);
}

Test(wk_hv, a_restarted_libvirtd_is_reconnected_transparently)
{
	struct wk_hv_domain_info info;
	struct wk_err err = {{0}};

	fake_hv_lose_connection(1); /* back 1 ms later, on a new connection */
	usleep(5000);
	cr_assert_eq(wk_hv_domain_info(hv, UUID, &info, &err), 0, "%s", err.msg);
	cr_assert_eq(fake_hv_calls("domain_info", UUID), 2, "one failed call, one retried");

	fake_hv_lose_connection(0); /* and one that stays down */
	cr_assert_eq(wk_hv_domain_info(hv, UUID, &info, &err), -ENOTCONN);
}
