/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the inbound side of the bus: every AMQP body ferry
 * consumes goes through rpc_envelope_decode() and then either
 * rpc_msg_from_inner() (requests) or rpc_reply_parse() (replies to the
 * calls ferry makes).  After a successful decode it does what wk_dispatch
 * and wk_flow do with a request: the getters, the method lookup, the nova
 * argument accessors and the payload builders that copy the caller's
 * Instance.  It also checks one property: a decoded inner object survives
 * rpc_envelope_encode() and a second decode unchanged.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rpc_dispatch.h"
#include "rpc_error.h"
#include "rpc_methods.h"
#include "rpc_msg.h"
#include "rpc_nova.h"
#include "rpc_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

/* Touches every byte of a string the way a logger or strdup would. */
static void
use_str(const char *s)
{
	if (s != NULL)
		sink += strlen(s);
}

/* Serializes a builder's result, then drops it. */
static void
use_json(json_t *j)
{
	char *text;

	if (j == NULL)
		return;
	text = rpc_json_dumps(j, JSON_COMPACT);
	use_str(text);
	free(text);
	json_decref(j);
}

/* Every refusal says why, in printable ASCII: the text goes to the log. */
static void
check_err(int r, const struct rpc_err *err)
{
	const unsigned char *p;

	if (r == -ENOMEM)
		return;
	if (err->msg[0] == '\0')
		abort();
	for (p = (const unsigned char *)err->msg; *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7f)
			abort();
}

static void
round_trip(json_t *inner)
{
	json_t *again = NULL;
	size_t len = 0;
	char *body;

	body = rpc_envelope_encode(inner, &len);
	if (body == NULL)
		return;
	if (strlen(body) != len || rpc_envelope_decode(body, len, &again, NULL) != 0 ||
	    !json_equal(inner, again))
		abort();
	json_decref(again);
	free(body);
}

static void
use_request(const rpc_msg *msg)
{
	static const char *const actions[] = {"live_migration_pre", "live_migration_post_dest",
	    "live_migration_rollback", "live_migration_abort"};
	const struct rpc_method *m = NULL;
	struct rpc_err err = {{0}};
	json_t *args = rpc_msg_args(msg);
	json_t *context = rpc_msg_context(msg);
	json_t *instance = json_object_get(args, "instance");
	size_t i;

	use_str(rpc_msg_method(msg));
	use_str(rpc_msg_version(msg));
	use_str(rpc_msg_namespace(msg));
	use_str(rpc_msg_request_id(msg));
	use_str(rpc_msg_msg_id(msg));
	use_str(rpc_msg_reply_q(msg));
	use_str(rpc_msg_unique_id(msg));
	sink += (size_t)(rpc_msg_timeout(msg) > 0) + rpc_msg_is_call(msg);
	if (!json_is_object(args) || !json_is_object(context) || rpc_msg_inner(msg) == NULL)
		abort();

	if (rpc_dispatch_lookup(rpc_methods, rpc_methods_count, rpc_msg_method(msg),
	        rpc_msg_version(msg), rpc_msg_namespace(msg), &m, &err) == 0)
		sink += (size_t)m->id;
	else
		use_str(err.msg);

	/* wk_dispatch's failure texts quote the caller's method and version */
	{
		char *f =
		    rpc_failure_unsupported_version(rpc_msg_version(msg), rpc_msg_method(msg));
		char *g = rpc_failure_no_such_method(rpc_msg_method(msg));

		use_str(f);
		use_str(g);
		free(f);
		free(g);
		f = rpc_error_failure(-EINVAL, err.msg);
		use_str(f);
		free(f);
	}

	/* wk_flow's argument accessors */
	use_str(rpc_nova_instance_uuid(instance));
	sink += rpc_nova_object_data(instance) != NULL;
	sink += rpc_nova_object_data(json_object_get(args, "migration")) != NULL;
	sink += rpc_nova_object_data(json_object_get(args, "migrate_data")) != NULL;

	/* notifications copy what the caller sent */
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		use_json(rpc_nova_live_migration_payload(
		    instance, actions[i], i % 2 ? "end" : "start", "fuzz-host", context));
	use_json(rpc_nova_instance_action_payload(
	    instance, NULL, NULL, context, json_object_get(args, "fault")));

	/* a call is answered */
	if (rpc_msg_is_call(msg)) {
		json_t *reply = rpc_reply_build(rpc_msg_msg_id(msg), json_incref(args), NULL, true);
		size_t len = 0;
		char *body = reply ? rpc_envelope_encode(reply, &len) : NULL;

		sink += len;
		free(body);
		json_decref(reply);
	}
}

static void
use_reply(json_t *inner)
{
	struct rpc_reply_in rep;
	char *cls = NULL, *module = NULL, *message = NULL;

	if (rpc_reply_parse(inner, &rep, NULL) < 0)
		return;
	use_str(rep.msg_id);
	if (rep.failure != NULL && rpc_failure_parse(rep.failure, &cls, &module, &message) == 0) {
		use_str(cls);
		use_str(module);
		use_str(message);
		free(cls);
		free(module);
		free(message);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpc_err err = {{0}};
	json_t *inner = NULL;
	rpc_msg *msg = NULL;
	int r;

	r = rpc_envelope_decode(data, size, &inner, &err);
	if (r < 0) {
		check_err(r, &err);
		return 0;
	}
	if (!json_is_object(inner))
		abort();
	round_trip(inner);
	use_reply(inner);
	sink += rpc_msg_peek_request_id(inner) != NULL;

	json_incref(inner);
	r = rpc_msg_from_inner(inner, &msg, &err);
	if (r == 0) {
		use_request(msg);
		rpc_msg_free(msg);
	} else {
		check_err(r, &err);
	}
	json_decref(inner);
	return 0;
}
