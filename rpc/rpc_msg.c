/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_msg: oslo envelope codec and inbound request validation.  The only
 * place where json_error_t becomes an errno for inbound bodies.  Pure.
 */
#include "rpc_msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rpc_dispatch.h"
#include "rpc_json_priv.h"

#define CONTEXT_PREFIX     "_context_"
#define CONTEXT_PREFIX_LEN (sizeof(CONTEXT_PREFIX) - 1)

struct rpc_msg {
	json_t *inner;   /* owned; every const char * below points into it */
	json_t *context; /* owned */
	const char *method;
	const char *version;
	const char *namespace;
	const char *msg_id;
	const char *reply_q;
	const char *unique_id;
	const char *request_id;
	double timeout;
};

/*
 * Walks the text once, outside strings counting brackets, so a hostile
 * "[[[[..." is refused before jansson's recursive parser sees it.  The count
 * is only a guard: syntax errors are left to jansson.
 */
static int
check_depth(const unsigned char *p, size_t len, size_t max_depth)
{
	size_t depth = 0;
	bool in_string = false;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
			continue;
		}
		switch (c) {
		case '"':
			in_string = true;
			break;
		case '[':
		case '{':
			if (++depth > max_depth)
				return -EINVAL;
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
	}
	return 0;
}

/*
 * jansson quotes the text near a syntax error, which is the sender's bytes:
 * keep error texts printable ASCII (they go to logs) with \xNN escapes.
 */
static void
printable(const char *in, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *in != '\0' && n + 5 < size; in++) {
		unsigned char c = (unsigned char)*in;

		if (c >= 0x20 && c < 0x7f) {
			out[n++] = (char)c;
		} else {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 0xf];
		}
	}
	out[n] = '\0';
}

int
rpc_json_parse(const void *buf, size_t len, json_t **ret_json, struct rpc_err *reterr)
{
	char text[4 * JSON_ERROR_TEXT_LENGTH];
	json_error_t jerr;
	json_t *j;

	if (buf == NULL && len > 0)
		return rpc_err_set(reterr, -EINVAL, "no JSON text");
	if (len > RPC_MSG_MAX_BYTES)
		return rpc_err_set(reterr, -E2BIG,
		    "JSON text of %zu bytes exceeds the %u byte limit", len, RPC_MSG_MAX_BYTES);
	/* Nearly every message takes the fast path; anything it declines,
	 * including every error, is jansson's to judge (rpc_json_priv.h). */
	j = rpc_json_fast_parse(buf, len, RPC_MSG_MAX_DEPTH);
	if (j != NULL) {
		*ret_json = j;
		return 0;
	}
	if (check_depth(buf, len, RPC_MSG_MAX_DEPTH) < 0)
		return rpc_err_set(
		    reterr, -EINVAL, "JSON nested deeper than %d levels", RPC_MSG_MAX_DEPTH);

	j = json_loadb(
	    buf == NULL ? "" : buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (j == NULL) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return rpc_err_set(reterr, -ENOMEM, "out of memory parsing JSON");
		printable(jerr.text, text, sizeof(text));
		return rpc_err_set(reterr, -EINVAL, "malformed JSON at line %d column %d: %s",
		    jerr.line, jerr.column, text);
	}
	*ret_json = j;
	return 0;
}

/* "2", "2.0", "2.13": returns the major or -EINVAL. */
static int
envelope_major(const char *v)
{
	long major = 0;
	const char *p = v;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		major = major * 10 + (*p - '0');
		if (major > 1000000)
			return -EINVAL;
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p != '\0')
		return -EINVAL;
	return (int)major;
}

/* The inner message of an envelope whose version is the string @ver; @text
 * is NULL when the message is not a string. */
static int
decode_inner(
    const char *ver, const char *text, size_t len, json_t **ret_inner, struct rpc_err *reterr)
{
	struct rpc_err ierr = {{0}};
	json_t *inner = NULL;
	int major;
	int r;

	major = envelope_major(ver);
	if (major < 0)
		return rpc_err_set(reterr, -EINVAL, "oslo.version is not a version number");
	if (major != 2)
		return rpc_err_set(
		    reterr, -EPROTONOSUPPORT, "unsupported envelope version %.16s", ver);
	if (text == NULL)
		return rpc_err_set(reterr, -EINVAL, "oslo.message is not a string");
	/* say which of the two JSON texts was refused */
	r = rpc_json_parse(text, len, &inner, &ierr);
	if (r < 0)
		return rpc_err_set(reterr, r, "oslo.message: %s", ierr.msg);
	if (!json_is_object(inner)) {
		json_decref(inner);
		return rpc_err_set(reterr, -EINVAL, "oslo.message is not a JSON object");
	}
	*ret_inner = inner;
	return 0;
}

/*
 * The usual envelope is split without a tree for it (rpc_json_priv.h); its
 * version, when longer than any version number we take, is left to the
 * general path too, which then says so.
 */
static bool
decode_fast(const void *body, size_t len, json_t **ret_inner, struct rpc_err *reterr, int *ret_r)
{
	struct rpc_envelope_parts parts;
	char ver[24];

	if (len > RPC_MSG_MAX_BYTES || !rpc_envelope_fast_split(body, len, &parts))
		return false;
	if (parts.version_len >= sizeof(ver)) {
		free(parts.version_buf);
		free(parts.message_buf);
		return false;
	}
	memcpy(ver, parts.version, parts.version_len);
	ver[parts.version_len] = '\0';
	*ret_r = decode_inner(ver, parts.message, parts.message_len, ret_inner, reterr);
	free(parts.version_buf);
	free(parts.message_buf);
	return true;
}

int
rpc_envelope_decode(const void *body, size_t len, json_t **ret_inner, struct rpc_err *reterr)
{
	json_t *outer = NULL;
	json_t *jver;
	json_t *jmsg;
	int r;

	if (decode_fast(body, len, ret_inner, reterr, &r))
		return r;
	r = rpc_json_parse(body, len, &outer, reterr);
	if (r < 0)
		return r;
	if (!json_is_object(outer)) {
		json_decref(outer);
		return rpc_err_set(reterr, -EINVAL, "message body is not a JSON object");
	}

	jver = json_object_get(outer, "oslo.version");
	jmsg = json_object_get(outer, "oslo.message");
	if (jver == NULL || jmsg == NULL) {
		/* oslo's deserialize_msg: no complete envelope = a bare 1.0 message */
		*ret_inner = outer;
		return 0;
	}

	if (!json_is_string(jver)) {
		r = rpc_err_set(reterr, -EINVAL, "oslo.version is not a string");
		goto out;
	}
	r = decode_inner(json_string_value(jver),
	    json_is_string(jmsg) ? json_string_value(jmsg) : NULL, json_string_length(jmsg),
	    ret_inner, reterr);
out:
	json_decref(outer);
	return r;
}

char *
rpc_json_dumps(const json_t *json, size_t flags)
{
	char *text = json_dumps(json, flags | JSON_ENSURE_ASCII);
	char *p;

	if (text == NULL)
		return NULL;
	/* outside strings JSON has no backslash, so every one starts an escape */
	for (p = text; *p != '\0'; p++) {
		if (*p != '\\')
			continue;
		if (p[1] == 'u') {
			int i;

			for (i = 2; i < 6 && p[i] != '\0'; i++) {
				if (p[i] >= 'A' && p[i] <= 'F')
					p[i] = (char)(p[i] - 'A' + 'a');
			}
			p += i - 1;
		} else if (p[1] != '\0') {
			p++;
		}
	}
	return text;
}

#define ENVELOPE_HEAD "{\"oslo.version\":\"2.0\",\"oslo.message\":\""
#define ENVELOPE_TAIL "\"}"

/*
 * The envelope around @text, written directly: byte for byte what
 * json_dumps() of {"oslo.version": "2.0", "oslo.message": text} gives with
 * JSON_COMPACT | JSON_ENSURE_ASCII (insertion order; '"' and '\' escaped,
 * control characters as \b \f \n \r \t or \u00xx), without building that
 * object and copying the text twice more.  @text is rpc_json_dumps()
 * output, so ASCII.  NULL on ENOMEM.
 */
static char *
envelope_wrap(const char *text, size_t *ret_len)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(ENVELOPE_HEAD) + strlen(ENVELOPE_TAIL) + 1;
	const char *p;
	char *out, *o;

	for (p = text; *p != '\0'; p++)
		n += (unsigned char)*p < 0x20 ? 6 : *p == '"' || *p == '\\' ? 2 : 1;
	out = malloc(n);
	if (out == NULL)
		return NULL;
	o = stpcpy(out, ENVELOPE_HEAD);
	for (p = text; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*o++ = (char)c;
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		default:
			o = stpcpy(o, "u00");
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
			break;
		}
	}
	o = stpcpy(o, ENVELOPE_TAIL);
	if (ret_len != NULL)
		*ret_len = (size_t)(o - out);
	return out;
}

char *
rpc_envelope_encode(json_t *inner, size_t *ret_len)
{
	char *text, *out;

	/* Replies and most casts: one pass (rpc_json_priv.h). */
	out = rpc_envelope_fast(inner, ret_len);
	if (out != NULL)
		return out;
	text = rpc_json_dumps(inner, JSON_COMPACT);
	if (text == NULL)
		return NULL;
	out = envelope_wrap(text, ret_len);
	free(text);
	return out;
}

const char *
rpc_msg_peek_request_id(json_t *inner)
{
	return json_string_value(json_object_get(inner, CONTEXT_PREFIX "request_id"));
}

/* A request id fit to quote in an error text: short and printable. */
static const char *
printable_request_id(json_t *inner)
{
	const char *rid = rpc_msg_peek_request_id(inner);
	const char *p;

	if (rid == NULL || *rid == '\0' || strlen(rid) > 64)
		return NULL;
	for (p = rid; *p != '\0'; p++) {
		if (*p < 0x21 || *p > 0x7e)
			return NULL;
	}
	return rid;
}

static int
fill_context(rpc_msg *m)
{
	const char *key;
	json_t *value;

	json_object_foreach (m->inner, key, value) {
		if (strncmp(key, CONTEXT_PREFIX, CONTEXT_PREFIX_LEN) != 0)
			continue;
		if (json_object_set(m->context, key + CONTEXT_PREFIX_LEN, value) < 0)
			return -ENOMEM;
	}
	m->request_id = json_string_value(json_object_get(m->context, "request_id"));
	return 0;
}

/* Validates m->inner into the other fields; detail in @reterr. */
static int
validate(rpc_msg *m, struct rpc_err *reterr)
{
	json_t *in = m->inner;
	json_t *j;
	int major;
	int minor;

	j = json_object_get(in, "method");
	if (!json_is_string(j) || json_string_length(j) == 0)
		return rpc_err_set(
		    reterr, -EINVAL, "\"method\" is missing or not a non-empty string");
	m->method = json_string_value(j);

	j = json_object_get(in, "args");
	if (!json_is_object(j))
		return rpc_err_set(reterr, -EINVAL, "\"args\" is missing or not an object");

	j = json_object_get(in, "version");
	if (j == NULL) {
		m->version = "1.0";
	} else if (!json_is_string(j) ||
	           rpc_version_parse(json_string_value(j), &major, &minor) < 0) {
		return rpc_err_set(reterr, -EINVAL, "\"version\" is not a \"major.minor\" string");
	} else {
		m->version = json_string_value(j);
	}

	j = json_object_get(in, "namespace");
	if (j != NULL && !json_is_null(j) && !json_is_string(j))
		return rpc_err_set(reterr, -EINVAL, "\"namespace\" is not a string or null");
	m->namespace = json_string_value(j);

	j = json_object_get(in, "_unique_id");
	if (j != NULL && !json_is_string(j))
		return rpc_err_set(reterr, -EINVAL, "\"_unique_id\" is not a string");
	m->unique_id = json_string_value(j);

	j = json_object_get(in, "_msg_id");
	if (j != NULL && !json_is_null(j)) {
		if (!json_is_string(j) || json_string_length(j) == 0)
			return rpc_err_set(
			    reterr, -EINVAL, "\"_msg_id\" is not a non-empty string");
		m->msg_id = json_string_value(j);

		j = json_object_get(in, "_reply_q");
		if (!json_is_string(j) || json_string_length(j) == 0)
			return rpc_err_set(
			    reterr, -EINVAL, "call without a \"_reply_q\" string to answer to");
		m->reply_q = json_string_value(j);

		j = json_object_get(in, "_timeout");
		if (j != NULL && !json_is_null(j)) {
			if (!json_is_number(j) || json_number_value(j) < 0)
				return rpc_err_set(reterr, -EINVAL,
				    "\"_timeout\" is not a non-negative number or null");
			m->timeout = json_number_value(j);
		}
	}
	return 0;
}

int
rpc_msg_from_inner(json_t *inner, rpc_msg **ret_msg, struct rpc_err *reterr)
{
	const char *rid;
	rpc_msg *m;
	int r;

	if (!json_is_object(inner)) {
		json_decref(inner);
		return rpc_err_set(reterr, -EINVAL, "RPC message is not a JSON object");
	}

	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		json_decref(inner);
		return -ENOMEM;
	}
	m->inner = inner;
	m->context = json_object();
	if (m->context == NULL) {
		rpc_msg_free(m);
		return -ENOMEM;
	}

	r = validate(m, reterr);
	if (r == 0) {
		r = fill_context(m);
		if (r < 0)
			rpc_err_set(reterr, r, "out of memory building the context");
	}
	if (r < 0) {
		rid = printable_request_id(inner);
		if (rid != NULL && reterr != NULL) {
			size_t used = strnlen(reterr->msg, sizeof(reterr->msg));

			snprintf(reterr->msg + used, sizeof(reterr->msg) - used, " (request_id %s)",
			    rid);
		}
		rpc_msg_free(m);
		return r;
	}
	*ret_msg = m;
	return 0;
}

int
rpc_msg_parse(const void *body, size_t len, rpc_msg **ret_msg, struct rpc_err *reterr)
{
	json_t *inner;
	int r;

	r = rpc_envelope_decode(body, len, &inner, reterr);
	if (r < 0)
		return r;
	return rpc_msg_from_inner(inner, ret_msg, reterr);
}

rpc_msg *
rpc_msg_free(rpc_msg *msg)
{
	if (msg == NULL)
		return NULL;
	json_decref(msg->context);
	json_decref(msg->inner);
	free(msg);
	return NULL;
}

const char *
rpc_msg_method(const rpc_msg *msg)
{
	return msg->method;
}

const char *
rpc_msg_version(const rpc_msg *msg)
{
	return msg->version;
}

const char *
rpc_msg_namespace(const rpc_msg *msg)
{
	return msg->namespace;
}

json_t *
rpc_msg_args(const rpc_msg *msg)
{
	return json_object_get(msg->inner, "args");
}

json_t *
rpc_msg_context(const rpc_msg *msg)
{
	return msg->context;
}

const char *
rpc_msg_request_id(const rpc_msg *msg)
{
	return msg->request_id;
}

const char *
rpc_msg_msg_id(const rpc_msg *msg)
{
	return msg->msg_id;
}

const char *
rpc_msg_reply_q(const rpc_msg *msg)
{
	return msg->reply_q;
}

const char *
rpc_msg_unique_id(const rpc_msg *msg)
{
	return msg->unique_id;
}

double
rpc_msg_timeout(const rpc_msg *msg)
{
	return msg->timeout;
}

bool
rpc_msg_is_call(const rpc_msg *msg)
{
	return msg->msg_id != NULL;
}

json_t *
rpc_msg_inner(const rpc_msg *msg)
{
	return msg->inner;
}
