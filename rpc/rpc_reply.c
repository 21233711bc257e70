/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_reply: reply, failure and request builders and the reply parser.
 * Failure texts are dumped with jansson's default separators (", ", ": ")
 * through rpc_json_dumps(), which is byte for byte Python's json.dumps().
 */
#include "rpc_reply.h"

#include <ctype.h>
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

/* A copy of @s with every byte outside printable ASCII as '?', for texts
 * jansson refuses (a message cut in the middle of a UTF-8 sequence). */
static char *
ascii_copy(const char *s)
{
	char *c = strdup(s);

	for (char *p = c; p != NULL && *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return c;
}

char *
rpc_failure_build(const char *cls, const char *module, const char *message, json_t *kwargs)
{
	json_t *tb = NULL;
	json_t *args = NULL;
	json_t *o = NULL;
	json_t *probe = NULL;
	char *clean = NULL;
	char *tail = NULL;
	char *text = NULL;

	if (kwargs == NULL)
		kwargs = json_object();
	if (!json_is_object(kwargs) || cls == NULL || module == NULL || message == NULL)
		goto out;
	/* Never lose a failure to a message that is not valid UTF-8. */
	probe = json_string(message);
	if (probe == NULL) {
		clean = ascii_copy(message);
		if (clean == NULL)
			goto out;
		message = clean;
	}
	json_decref(probe);

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
	free(clean);
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

/* ---- where to answer an undecodable call ---- */

struct scan {
	const unsigned char *p, *end;
};

static void
scan_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* Skips one string at s->p (which is '"'); its raw bytes in [*ret_start, +*ret_len).
 * Sets *ret_plain when it holds printable ASCII only, without escapes. */
static int
scan_string(struct scan *s, const unsigned char **ret_start, size_t *ret_len, bool *ret_plain)
{
	const unsigned char *start = ++s->p;
	bool plain = true;

	while (s->p < s->end && *s->p != '"') {
		if (*s->p < 0x20)
			return -EINVAL;
		if (*s->p == '\\') {
			plain = false;
			if (++s->p == s->end)
				return -EINVAL;
		} else if (*s->p >= 0x7f) {
			plain = false;
		}
		s->p++;
	}
	if (s->p == s->end)
		return -EINVAL;
	*ret_start = start;
	*ret_len = (size_t)(s->p - start);
	*ret_plain = plain;
	s->p++;
	return 0;
}

/* A number or a literal (true, false, null), read loosely. */
static int
scan_scalar(struct scan *s)
{
	const unsigned char *start = s->p;

	while (s->p < s->end && *s->p != '\0' && (strchr("+-.", *s->p) != NULL || isalnum(*s->p)))
		s->p++;
	return s->p > start ? 0 : -EINVAL;
}

/* Skips one value of any depth without recursion: strings are skipped
 * whole, brackets must match. */
static int
scan_value(struct scan *s)
{
	unsigned char *stack = NULL;
	size_t depth = 0, cap = 0;
	int r = 0;

	do {
		const unsigned char *str;
		size_t n;
		bool plain;

		scan_ws(s);
		if (s->p == s->end) {
			r = -EINVAL;
			break;
		}
		switch (*s->p) {
		case '"':
			r = scan_string(s, &str, &n, &plain);
			break;
		case '{':
		case '[':
			if (depth == cap) {
				unsigned char *bigger = realloc(stack, cap ? cap * 2 : 64);

				if (bigger == NULL) {
					r = -ENOMEM;
					break;
				}
				stack = bigger;
				cap = cap ? cap * 2 : 64;
			}
			stack[depth++] = *s->p == '{' ? '}' : ']';
			s->p++;
			break;
		case '}':
		case ']':
			if (depth == 0 || stack[depth - 1] != *s->p)
				r = -EINVAL;
			else
				depth--;
			s->p++;
			break;
		case ',':
		case ':':
			if (depth == 0)
				r = -EINVAL;
			s->p++;
			break;
		default:
			r = scan_scalar(s);
			break;
		}
	} while (r == 0 && depth > 0);
	free(stack);
	return r;
}

static char *
plain_copy(const unsigned char *start, size_t len, bool plain)
{
	char *c;

	if (!plain || len == 0 || len > 255)
		return NULL;
	c = malloc(len + 1);
	if (c != NULL) {
		memcpy(c, start, len);
		c[len] = '\0';
	}
	return c;
}

/* Reads the top-level plain strings _msg_id, _reply_q, _context_request_id. */
static int
scan_top(const void *text, size_t len, char *found[3])
{
	static const char *const keys[3] = {"_msg_id", "_reply_q", "_context_request_id"};
	struct scan s = {text, (const unsigned char *)text + len};
	int r;

	scan_ws(&s);
	if (s.p == s.end || *s.p++ != '{')
		return -EINVAL;
	scan_ws(&s);
	if (s.p < s.end && *s.p == '}') {
		s.p++;
		goto tail;
	}
	for (;;) {
		const unsigned char *key, *val;
		size_t klen, vlen;
		bool kplain, vplain;

		scan_ws(&s);
		if (s.p == s.end || *s.p != '"')
			return -EINVAL;
		r = scan_string(&s, &key, &klen, &kplain);
		if (r < 0)
			return r;
		scan_ws(&s);
		if (s.p == s.end || *s.p++ != ':')
			return -EINVAL;
		scan_ws(&s);
		if (s.p < s.end && *s.p == '"') {
			r = scan_string(&s, &val, &vlen, &vplain);
			if (r < 0)
				return r;
			for (size_t i = 0; i < 3; i++) {
				if (!kplain || klen != strlen(keys[i]) ||
				    memcmp(key, keys[i], klen) != 0)
					continue;
				free(found[i]);
				found[i] = plain_copy(val, vlen, vplain);
			}
		} else {
			r = scan_value(&s);
			if (r < 0)
				return r;
		}
		scan_ws(&s);
		if (s.p == s.end)
			return -EINVAL;
		if (*s.p == '}') {
			s.p++;
			break;
		}
		if (*s.p++ != ',')
			return -EINVAL;
	}
tail:
	scan_ws(&s);
	return s.p == s.end ? 0 : -EINVAL;
}

int
rpc_reply_peek_target(
    const void *body, size_t len, char **ret_msg_id, char **ret_reply_q, char **ret_request_id)
{
	json_t *outer = NULL;
	json_t *jmsg;
	const void *text = body;
	size_t text_len = len;
	char *found[3] = {NULL, NULL, NULL};
	int r;

	/* An envelope that parses: look inside its oslo.message text. */
	if (rpc_json_parse(body, len, &outer, NULL) == 0) {
		jmsg = json_object_get(outer, "oslo.message");
		if (json_is_string(jmsg) && json_object_get(outer, "oslo.version") != NULL) {
			text = json_string_value(jmsg);
			text_len = json_string_length(jmsg);
		}
	}
	r = scan_top(text, text_len, found);
	json_decref(outer);
	if (r < 0) {
		for (size_t i = 0; i < 3; i++)
			free(found[i]);
		return r;
	}
	if (found[0] == NULL || found[1] == NULL) { /* a cast: nowhere to answer */
		free(found[0]);
		free(found[1]);
		found[0] = found[1] = NULL;
	}
	*ret_msg_id = found[0];
	*ret_reply_q = found[1];
	if (ret_request_id != NULL)
		*ret_request_id = found[2];
	else
		free(found[2]);
	return 0;
}
