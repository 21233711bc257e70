/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_reply: reply, failure and request builders and the reply parser.
 * Failure texts are dumped with jansson's default separators (", ", ": ")
 * through rpc_json_dumps(), which is byte for byte Python's json.dumps().
 */
#include "rpc_reply.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rpc_msg.h"
#include "rpc_uuid.h"

#define NO_SUCH_METHOD_FMT      "Endpoint does not support RPC method %s"
#define UNSUPPORTED_VERSION_FMT "Endpoint does not support RPC version %s"
#define DISPATCHER_MODULE       "oslo_messaging.rpc.dispatcher"

int
rpc_reply_parse(json_t *inner, struct rpc_reply_in *ret, struct rpc_err *reterr)
{
	struct rpc_reply_in in = {0};
	json_t *j;

	if (!json_is_object(inner))
		return rpc_err_set(reterr, -EINVAL, "reply is not a JSON object");

	j = json_object_get(inner, "_msg_id");
	if (!json_is_string(j))
		return rpc_err_set(reterr, -EINVAL, "reply without a \"_msg_id\" string");
	in.msg_id = json_string_value(j);

	in.result = json_object_get(inner, "result");

	j = json_object_get(inner, "failure");
	if (j != NULL && !json_is_null(j) && !json_is_string(j))
		return rpc_err_set(reterr, -EINVAL, "reply \"failure\" is not a string or null");
	in.failure = json_string_value(j);

	j = json_object_get(inner, "ending");
	if (j != NULL && !json_is_null(j) && !json_is_boolean(j))
		return rpc_err_set(reterr, -EINVAL, "reply \"ending\" is not a boolean");
	in.ending = json_is_true(j);

	*ret = in;
	return 0;
}

int
rpc_failure_parse(const char *failure, char **ret_class, char **ret_module, char **ret_message)
{
	char *cls = NULL;
	char *mod = NULL;
	char *msg = NULL;
	json_t *jcls;
	json_t *jmod;
	json_t *jmsg;
	json_t *f;
	int r;

	if (failure == NULL)
		return -EINVAL;
	r = rpc_json_parse(failure, strlen(failure), &f, NULL);
	if (r < 0)
		return r;

	jcls = json_object_get(f, "class");
	jmod = json_object_get(f, "module");
	jmsg = json_object_get(f, "message");
	if (!json_is_object(f) || !json_is_string(jcls) || !json_is_string(jmod) ||
	    (jmsg != NULL && !json_is_string(jmsg))) {
		r = -EINVAL;
		goto out;
	}

	cls = strdup(json_string_value(jcls));
	mod = strdup(json_string_value(jmod));
	msg = strdup(jmsg != NULL ? json_string_value(jmsg) : "");
	if (cls == NULL || mod == NULL || msg == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (ret_class != NULL) {
		*ret_class = cls;
		cls = NULL;
	}
	if (ret_module != NULL) {
		*ret_module = mod;
		mod = NULL;
	}
	if (ret_message != NULL) {
		*ret_message = msg;
		msg = NULL;
	}
	r = 0;
out:
	free(cls);
	free(mod);
	free(msg);
	json_decref(f);
	return r;
}

/* json_object_set_new() that also fails on a NULL value (an earlier ENOMEM). */
static int
set_new(json_t *obj, const char *key, json_t *value)
{
	if (value == NULL)
		return -ENOMEM;
	return json_object_set_new(obj, key, value) < 0 ? -ENOMEM : 0;
}

static json_t *
fresh_unique_id(void)
{
	char uid[RPC_UUID_HEX_LEN];

	rpc_uuid4_hex(uid);
	return json_string(uid);
}

json_t *
rpc_reply_build(const char *msg_id, json_t *result, const char *failure, bool ending)
{
	json_t *o;

	o = json_object();
	if (o == NULL || msg_id == NULL) {
		json_decref(result);
		json_decref(o);
		return NULL;
	}
	if (set_new(o, "result", result != NULL ? result : json_null()) < 0 ||
	    set_new(o, "failure", failure != NULL ? json_string(failure) : json_null()) < 0 ||
	    set_new(o, "ending", json_boolean(ending)) < 0 ||
	    set_new(o, "_msg_id", json_string(msg_id)) < 0 ||
	    set_new(o, "_unique_id", fresh_unique_id()) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The last traceback line Python prints: "ValueError: x" for builtins. */
static char *
traceback_tail(const char *cls, const char *module, const char *message)
{
	char *s = NULL;
	int n;

	if (strcmp(module, "builtins") == 0 || strcmp(module, "exceptions") == 0)
		n = asprintf(&s, "%s: %s\n", cls, message);
	else
		n = asprintf(&s, "%s.%s: %s\n", module, cls, message);
	return n < 0 ? NULL : s;
}

char *
rpc_failure_build(const char *cls, const char *module, const char *message, json_t *kwargs)
{
	json_t *tb = NULL;
	json_t *args = NULL;
	json_t *o = NULL;
	char *tail = NULL;
	char *text = NULL;

	if (kwargs == NULL)
		kwargs = json_object();
	if (!json_is_object(kwargs) || cls == NULL || module == NULL || message == NULL)
		goto out;

	tail = traceback_tail(cls, module, message);
	tb = json_array();
	args = json_array();
	o = json_object();
	if (tail == NULL || tb == NULL || args == NULL || o == NULL ||
	    json_array_append_new(tb, json_string("Traceback (most recent call last):\n")) < 0 ||
	    json_array_append_new(tb, json_string(tail)) < 0 ||
	    json_array_append_new(args, json_string(message)) < 0)
		goto out;

	if (set_new(o, "class", json_string(cls)) < 0 ||
	    set_new(o, "module", json_string(module)) < 0 ||
	    set_new(o, "message", json_string(message)) < 0)
		goto out;
	if (set_new(o, "tb", tb) < 0) {
		tb = NULL;
		goto out;
	}
	tb = NULL;
	if (set_new(o, "args", args) < 0) {
		args = NULL;
		goto out;
	}
	args = NULL;
	if (set_new(o, "kwargs", kwargs) < 0) {
		kwargs = NULL;
		goto out;
	}
	kwargs = NULL;

	text = rpc_json_dumps(o, 0);
out:
	json_decref(kwargs);
	json_decref(tb);
	json_decref(args);
	json_decref(o);
	free(tail);
	return text;
}

char *
rpc_failure_no_such_method(const char *method)
{
	char *msg = NULL;
	char *text;

	if (asprintf(&msg, NO_SUCH_METHOD_FMT, method != NULL ? method : "None") < 0)
		return NULL;
	text = rpc_failure_build("NoSuchMethod", DISPATCHER_MODULE, msg, NULL);
	free(msg);
	return text;
}

char *
rpc_failure_unsupported_version(const char *version, const char *method)
{
	char *msg = NULL;
	char *text;
	int n;

	if (version == NULL)
		version = "None";
	if (method != NULL && *method != '\0')
		n = asprintf(
		    &msg, UNSUPPORTED_VERSION_FMT ". Attempted method: %s", version, method);
	else
		n = asprintf(&msg, UNSUPPORTED_VERSION_FMT, version);
	if (n < 0)
		return NULL;
	text = rpc_failure_build("UnsupportedVersion", DISPATCHER_MODULE, msg, NULL);
	free(msg);
	return text;
}

/* Python sends _timeout=60 as an int; keep integral values integers. */
static json_t *
timeout_json(double timeout)
{
	if (!(timeout > 0))
		return json_null();
	if (timeout == floor(timeout) && timeout < 1e15)
		return json_integer((json_int_t)timeout);
	return json_real(timeout);
}

json_t *
rpc_request_build(const char *method, json_t *args, const char *version, json_t *context,
    const char *msg_id, const char *reply_q, double timeout)
{
	const char *key;
	json_t *value;
	json_t *o;

	if (args == NULL)
		args = json_object();
	o = json_object();
	if (o == NULL || args == NULL || method == NULL) {
		json_decref(args);
		json_decref(o);
		return NULL;
	}
	if (set_new(o, "method", json_string(method)) < 0) {
		json_decref(args);
		goto fail;
	}
	if (set_new(o, "args", args) < 0)
		goto fail;
	if (version != NULL && set_new(o, "version", json_string(version)) < 0)
		goto fail;
	if (msg_id != NULL) {
		if (set_new(o, "_msg_id", json_string(msg_id)) < 0 ||
		    set_new(o, "_reply_q", reply_q != NULL ? json_string(reply_q) : json_null()) <
		        0 ||
		    set_new(o, "_timeout", timeout_json(timeout)) < 0)
			goto fail;
	}
	if (set_new(o, "_unique_id", fresh_unique_id()) < 0)
		goto fail;

	json_object_foreach (context, key, value) {
		char *k = NULL;
		int r;

		if (asprintf(&k, "_context_%s", key) < 0)
			goto fail;
		r = json_object_set(o, k, value);
		free(k);
		if (r < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}
