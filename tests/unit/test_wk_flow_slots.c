/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The flow's slots, queues and edges on the fake hypervisor, with a bus
 * that never connects (its publishes wait in the outbox): inbound
 * reservations refuse what is not a uuid and a guest that runs here, hold
 * a lease that ends them; uuids are canonical; the outbound queue is
 * bounded in length and in time; dest and target_connect_addr are hosts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "fake_hv.h"
#include "rpc_error.h"
#include "rpc_url.h"
#include "wk_flow_priv.h"

#define SRC_URI "fake://host1"
#define DST_URI "fake://host2"
#define U1      "6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5f"
#define U2      "7a1d6b8f-9e2c-4d3b-8f40-1b2c3d4e5f60"
#define U3      "8b2e7c90-af3d-4e4c-9051-2c3d4e5f6071"

struct node {
	struct wk_conf *conf;
	struct wk_tuning tuning;
	rpc_amqp *amqp;
	wk_bus *bus;
	wk_hv *hv;
	wk_migrate *migrate;
	wk_flow *flow;
};

static struct node src, dst;

static void
node_up(struct node *n, const char *host, const char *uri, const char *libvirt_extra)
{
	char path[] = "/tmp/test_wk_flow_slots_XXXXXX";
	char text[1024];
	struct rpc_amqp_options o = {0};
	struct wk_bus_config bc = {0};
	struct wk_flow_deps d = {0};
	struct rpc_url *url = NULL;
	struct rpc_err rerr = {{0}};
	struct wk_err err = {{0}};
	int fd = mkstemp(path), len;

	len = snprintf(text, sizeof(text),
	    "transport_url = \"rabbit://guest:guest@127.0.0.1:1/\";\nhost = \"%s\";\n"
	    "rpc_response_timeout = 5;\nlibvirt = {\n connection_uri = \"%s\";\n"
	    " live_migration_inbound_addr = \"127.0.0.3\";\n%s\n};\n",
	    host, uri, libvirt_extra);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, (size_t)len), len);
	close(fd);
	cr_assert_eq(wk_conf_load(path, &n->conf, &err), 0, "%s", err.msg);
	unlink(path);
	cr_assert_eq(wk_tuning_derive(n->conf, NULL, &n->tuning, &err), 0, "%s", err.msg);
	cr_assert_eq(rpc_url_parse(n->conf->transport_url, &url, &rerr), 0);
	o.url = url;
	o.exchange = "nova";
	o.topics[0] = "compute";
	o.server = host;
	o.connection_name = "test";
	o.notify_topic = "versioned_notifications";
	cr_assert_eq(rpc_amqp_new(&o, &n->amqp), 0);
	rpc_url_free(url);
	bc.topic = "compute";
	bc.publisher_id = "nova-compute:test";
	bc.notify_topic = "versioned_notifications";
	bc.notify_enabled = true;
	bc.rpc_response_timeout = 5;
	cr_assert_eq(wk_bus_new(n->amqp, &bc, &n->bus), 0);
	cr_assert_eq(wk_hv_open(&fake_hv_ops, uri, &n->hv, &err), 0, "%s", err.msg);
	cr_assert_eq(wk_migrate_new(n->hv, &n->migrate), 0);
	d.conf = n->conf;
	d.tuning = &n->tuning;
	d.bus = n->bus;
	d.hv = n->hv;
	d.migrate = n->migrate;
	cr_assert_eq(wk_flow_new(&d, &n->flow), 0);
}

static void
node_down(struct node *n)
{
	n->flow = wk_flow_free(n->flow);
	n->migrate = wk_migrate_free(n->migrate);
	n->hv = wk_hv_close(n->hv);
	n->bus = wk_bus_free(n->bus);
	n->amqp = rpc_amqp_free(n->amqp);
	n->conf = wk_conf_free(n->conf);
}

static void
setup(void)
{
	fake_hv_reset();
	node_up(&src, "host1", SRC_URI,
	    " max_concurrent_live_migrations = 1;\n max_queued_live_migrations = 1;\n"
	    " live_migration_queue_timeout = 30;");
	node_up(&dst, "host2", DST_URI, " max_concurrent_inbound_migrations = 1;");
}

static void
teardown(void)
{
	node_down(&src);
	node_down(&dst);
}

TestSuite(wk_flow_slots, .init = setup, .fini = teardown);

static json_t *
instance(const char *uuid)
{
	return json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s}}", "nova_object.name", "Instance",
	    "nova_object.namespace", "nova", "nova_object.version", "2.7", "nova_object.data",
	    "uuid", uuid, "host", "host1", "vm_state", "active");
}

/* A message (call when is_call) with args (stolen). */
static rpc_msg *
msg(const char *method, json_t *args, bool is_call)
{
	static int n;
	char id[32], rid[40];
	json_t *inner;
	rpc_msg *m = NULL;
	struct rpc_err err = {{0}};

	snprintf(id, sizeof(id), "uid%d", ++n);
	snprintf(rid, sizeof(rid), "req-%d", n);
	inner = json_pack("{s:s,s:o,s:s,s:s,s:s}", "method", method, "args", args, "version", "6.0",
	    "_unique_id", id, "_context_request_id", rid);
	if (is_call) {
		json_object_set_new(inner, "_msg_id", json_string(id));
		json_object_set_new(inner, "_reply_q", json_string("reply_test"));
	}
	cr_assert_eq(rpc_msg_from_inner(inner, &m, &err), 0, "%s", err.msg);
	return m;
}

static int
call(struct node *n, wk_flow_handler h, const char *method, json_t *args, bool is_call,
    struct wk_err *err)
{
	rpc_msg *m = msg(method, args, is_call);
	json_t *result = NULL;
	int r;

	memset(err, 0, sizeof(*err));
	r = h(n->flow, m, &result, err);
	json_decref(result);
	rpc_msg_free(m);
	return r;
}

static int
pre(const char *uuid, struct wk_err *err)
{
	return call(&dst, wk_flow_pre_live_migration, "pre_live_migration",
	    json_pack("{s:o,s:n}", "instance", instance(uuid), "disk"), true, err);
}

static int
live_migration(const char *uuid, const char *dest, struct wk_err *err)
{
	return call(&src, wk_flow_live_migration, "live_migration",
	    json_pack(
	        "{s:o,s:s,s:b}", "instance", instance(uuid), "dest", dest, "block_migration", 0),
	    false, err);
}

/* instance uuid -> phase of node n's records, as list_migrations says. */
static const char *
phase_of(struct node *n, const char *uuid)
{
	static char phase[32];
	json_t *list = NULL, *e;
	struct wk_err err = {{0}};
	size_t i;

	cr_assert_eq(wk_flow_list_migrations(n->flow, NULL, &list, &err), 0);
	phase[0] = '\0';
	json_array_foreach (list, i, e)
		if (strcmp(json_string_value(json_object_get(e, "instance_uuid")), uuid) == 0)
			snprintf(phase, sizeof(phase), "%s",
			    json_string_value(json_object_get(e, "phase")));
	json_decref(list);
	return phase[0] ? phase : NULL;
}

/* ---- item 6: inbound reservations ---- */

Test(wk_flow_slots, pre_for_what_is_not_a_uuid_is_refused_with_invalid_input)
{
	struct wk_err err;

	cr_assert_eq(pre("not-a-uuid", &err), -EINVAL);
	cr_assert(strstr(err.msg, "'not-a-uuid' is not a uuid") != NULL, "%s", err.msg);
	cr_assert_str_eq(rpc_error_class(-EINVAL), "InvalidInput");
	cr_assert_eq(wk_flow_active(dst.flow), 0);
	cr_assert_eq(pre(U1, &err), 0, "%s", err.msg); /* the slot is still free */
}

Test(wk_flow_slots, pre_for_a_guest_running_here_is_refused_and_reserves_nothing)
{
	struct wk_err err;

	fake_hv_add_domain(DST_URI, U1, WK_HV_STATE_RUNNING, 262144, true);
	cr_assert_eq(pre(U1, &err), -EEXIST);
	cr_assert(strstr(err.msg, "already runs on 'host2'") != NULL, "%s", err.msg);
	cr_assert_str_eq(rpc_error_class(-EEXIST), "InstanceExists");
	cr_assert_eq(wk_flow_active(dst.flow), 0);
	/* one that is arriving is not refused */
	fake_hv_set_domain(DST_URI, U1, WK_HV_STATE_PAUSED, WK_HV_REASON_MIGRATING);
	cr_assert_eq(pre(U1, &err), 0, "%s", err.msg);
}

Test(wk_flow_slots, a_reservation_no_migration_arrives_for_ends_with_its_lease)
{
	uint64_t lease = wk_flow_lease_ms(dst.flow), t0 = wk_now_ms();
	struct wk_err err;

	cr_assert_eq(lease, 20000); /* 2 * 5 s is below the floor */
	cr_assert_eq(pre(U1, &err), 0, "%s", err.msg);
	cr_assert_eq(pre(U2, &err), -EAGAIN);
	cr_assert(strstr(err.msg, NO_INBOUND_SLOT) != NULL, "%s", err.msg);
	cr_assert_geq(wk_flow_tick(dst.flow, t0), 0); /* it asks to be woken for the lease */
	wk_flow_tick(dst.flow, t0 + lease - 1000);
	cr_assert_str_eq(phase_of(&dst, U1), "inbound");
	/* leases are looked at every 5 s */
	wk_flow_tick(dst.flow, t0 + lease + 5000);
	cr_assert_null(phase_of(&dst, U1));
	cr_assert_eq(wk_flow_tick(dst.flow, t0 + lease + 5100), -1);
	cr_assert_eq(pre(U2, &err), 0, "%s", err.msg); /* the slot went to the next one */
}

Test(wk_flow_slots, the_lease_is_renewed_while_the_migration_runs_then_ends_without_post)
{
	uint64_t lease = wk_flow_lease_ms(dst.flow), t0 = wk_now_ms();
	struct wk_hv_domain_info info;
	struct wk_err err;

	cr_assert_eq(pre(U1, &err), 0, "%s", err.msg);
	fake_hv_add_domain(DST_URI, U1, WK_HV_STATE_PAUSED, 262144, true);
	fake_hv_set_domain(DST_URI, U1, WK_HV_STATE_PAUSED, WK_HV_REASON_MIGRATING);
	wk_flow_tick(dst.flow, t0 + lease + 100); /* incoming: renewed */
	cr_assert_str_eq(phase_of(&dst, U1), "inbound");
	fake_hv_set_domain(DST_URI, U1, WK_HV_STATE_RUNNING, WK_HV_REASON_OTHER);
	wk_flow_tick(dst.flow, t0 + lease + 5200); /* migrated; post may still come */
	cr_assert_str_eq(phase_of(&dst, U1), "inbound");
	wk_flow_tick(dst.flow, t0 + 2 * lease + 200); /* it did not */
	cr_assert_null(phase_of(&dst, U1));
	cr_assert(fake_hv_get_domain(DST_URI, U1, &info)); /* the guest stays */
	cr_assert_eq(info.state, WK_HV_STATE_RUNNING);
}

Test(wk_flow_slots, rollback_at_destination_frees_the_slot)
{
	struct wk_err err;

	cr_assert_eq(pre(U1, &err), 0, "%s", err.msg);
	cr_assert_eq(
	    call(&dst, wk_flow_rollback_at_destination, "rollback_live_migration_at_destination",
	        json_pack("{s:o,s:b}", "instance", instance(U1), "destroy_disks", 1), false, &err),
	    0, "%s", err.msg);
	cr_assert_eq(wk_flow_active(dst.flow), 0);
	cr_assert_eq(pre(U2, &err), 0, "%s", err.msg);
}

/* ---- item 7: one uuid, one migration; a bounded queue ---- */

Test(wk_flow_slots, spellings_of_one_uuid_are_one_reservation)
{
	struct wk_err err;

	cr_assert_eq(pre("6F0C5A7E8D1B4C2A9E3F0A1B2C3D4E5F", &err), 0, "%s", err.msg);
	cr_assert_str_eq(phase_of(&dst, U1), "inbound");
	/* another spelling replaces it rather than taking a second slot */
	cr_assert_eq(pre("  6f0c5a7e-8D1B-4c2a-9e3f-0a1b2c3d4e5f ", &err), 0, "%s", err.msg);
	cr_assert_eq(wk_flow_active(dst.flow), 1);
	cr_assert_eq(
	    call(&dst, wk_flow_rollback_at_destination, "rollback_live_migration_at_destination",
	        json_pack("{s:o}", "instance", instance("6f0c5a7e8d1b4c2a9e3f0a1b2c3d4e5f")), false,
	        &err),
	    0, "%s", err.msg);
	cr_assert_eq(wk_flow_active(dst.flow), 0);
}

Test(wk_flow_slots, spellings_of_one_uuid_are_one_migration)
{
	struct wk_err err;

	fake_hv_add_domain(SRC_URI, U1, WK_HV_STATE_RUNNING, 262144, true);
	cr_assert_eq(
	    live_migration("6F0C5A7E8D1B4C2A9E3F0A1B2C3D4E5F", "host2", &err), 0, "%s", err.msg);
	cr_assert_str_eq(phase_of(&src, U1), "preparing");
	cr_assert_eq(
	    live_migration(" 6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5F", "host2", &err), -EBUSY);
	cr_assert(strstr(err.msg, "'" U1 "' is already migrating") != NULL, "%s", err.msg);
	cr_assert_eq(live_migration("6f0c5a7e-8d1b-4c2a-9e3f-0a1b2c3d4e5", "host2", &err), -EINVAL);
	cr_assert_eq(wk_flow_active(src.flow), 1);
}

Test(wk_flow_slots, a_cast_beyond_the_queue_bound_is_refused)
{
	struct wk_err err;

	fake_hv_add_domain(SRC_URI, U1, WK_HV_STATE_RUNNING, 262144, true);
	fake_hv_add_domain(SRC_URI, U2, WK_HV_STATE_RUNNING, 262144, true);
	fake_hv_add_domain(SRC_URI, U3, WK_HV_STATE_RUNNING, 262144, true);
	cr_assert_eq(live_migration(U1, "host2", &err), 0, "%s", err.msg);
	cr_assert_eq(live_migration(U2, "host2", &err), 0, "%s", err.msg);
	cr_assert_str_eq(phase_of(&src, U2), "queued");
	cr_assert_eq(live_migration(U3, "host2", &err), -EAGAIN);
	cr_assert(strstr(err.msg, "libvirt.max_queued_live_migrations = 1") != NULL, "%s", err.msg);
	cr_assert_null(phase_of(&src, U3));
}

Test(wk_flow_slots, a_migration_queued_past_the_queue_timeout_is_rolled_back)
{
	uint64_t t0 = wk_now_ms();
	struct wk_err err;
	int next;

	fake_hv_add_domain(SRC_URI, U1, WK_HV_STATE_RUNNING, 262144, true);
	fake_hv_add_domain(SRC_URI, U2, WK_HV_STATE_RUNNING, 262144, true);
	cr_assert_eq(live_migration(U1, "host2", &err), 0, "%s", err.msg);
	cr_assert_eq(live_migration(U2, "host2", &err), 0, "%s", err.msg);
	next = wk_flow_tick(src.flow, t0);
	cr_assert(next > 25000 && next <= 30000, "%d", next); /* woken for the timeout */
	wk_flow_tick(src.flow, t0 + 29000);
	cr_assert_str_eq(phase_of(&src, U2), "queued");
	wk_flow_tick(src.flow, t0 + 30500);
	cr_assert_null(phase_of(&src, U2));
	cr_assert_str_eq(phase_of(&src, U1), "preparing"); /* it held a slot, not the queue */
}

/* ---- item 8: only hosts reach URIs and routing keys ---- */

Test(wk_flow_slots, a_dest_with_uri_syntax_is_refused_before_any_call)
{
	struct rpc_amqp_stats before, after;
	struct wk_err err;

	fake_hv_add_domain(SRC_URI, U1, WK_HV_STATE_RUNNING, 262144, true);
	rpc_amqp_get_stats(src.amqp, &before);
	cr_assert_eq(live_migration(U1, "hostB/system?no_verify=1#", &err), -EINVAL);
	cr_assert(strstr(err.msg, "is not a host name or IP address") != NULL, "%s", err.msg);
	rpc_amqp_get_stats(src.amqp, &after);
	cr_assert_eq(after.outbox_len, before.outbox_len); /* no pre_live_migration sent */
	cr_assert_eq(fake_hv_calls("domain_info", U1), 0);
	cr_assert_eq(wk_flow_active(src.flow), 0);
}

Test(wk_flow_slots, an_ipv6_target_is_bracketed_in_the_uris)
{
	struct wk_hv_migrate_params p;
	struct mig_job_uris uris;
	char uuid[] = U1, dest[] = "host2";
	struct mig m = {0};

	m.uuid = uuid;
	m.dest_host = dest;
	m.migrate_data = json_pack("{s:s,s:{s:s}}", "nova_object.name", "LibvirtLiveMigrateData",
	    "nova_object.data", "target_connect_addr", "fd00::3");
	mig_job_params(src.flow, &m, &p, &uris);
	cr_assert_str_eq(p.dest_uri, "qemu+tcp://[fd00::3]/system");
	cr_assert_str_eq(p.migrate_uri, "tcp://[fd00::3]");
	json_decref(m.migrate_data);
}
