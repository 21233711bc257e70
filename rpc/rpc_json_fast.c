/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_json_fast: the JSON reader and the envelope writer of the bus's hot
 * path (see rpc_json_priv.h).
 *
 * jansson's decoder reads about 40 bytes per microsecond here: an oslo call
 * of 430 bytes costs 10 us for the envelope and 10 us more for the text
 * inside it, a fifth of a list_migrations call's CPU in the worker
 * (tests/bench/rpc_bench.py, perf).  This reader takes the same documents
 * a span at a time and builds the same json_t tree.  It accepts only what
 * it is sure jansson accepts with JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
 * and declines everything else (any syntax error, invalid UTF-8, \u0000,
 * duplicate keys, integers of more than 18 digits, reals strtod(3) cannot
 * read whole or exactly, nesting past the limit, out of memory): the caller
 * then asks jansson, whose verdict and error text stand.
 *
 * The writer puts a reply's JSON text straight into the envelope's string,
 * escaped twice in one pass, where jansson dumps the text, copies it into a
 * second object and dumps that.  It declines reals (jansson's formatting
 * stands) and anything jansson would fail on.
 *
 * tests/unit/test_rpc_json_fast.c compares both with jansson on the oslo
 * fixtures and on mutations of them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc_json_priv.h"

struct reader {
	const unsigned char *p, *end;
	size_t depth, max_depth;
};

static json_t *read_value(struct reader *r);

/* The bytes a string holds as they are: ASCII from ' ' on, but '"' and '\\'. */
#define P16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const bool plain[256] = {
    P16(0), P16(0),                                 /* 0x00-0x1f */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f: '"' */
    P16(1), P16(1),                                 /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50-0x5f: '\\' */
    P16(1), P16(1),                                 /* 0x60-0x7f */
};
#undef P16

static void
skip_ws(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

static int
hex4(const unsigned char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		int c = p[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* Length of the well-formed UTF-8 sequence at p (shortest form, no
 * surrogates, at most U+10FFFF), or 0. */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n, i;
	uint32_t v;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10ffff ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	return n;
}

static size_t
put_utf8(unsigned char *o, uint32_t v)
{
	if (v < 0x80) {
		o[0] = (unsigned char)v;
		return 1;
	}
	if (v < 0x800) {
		o[0] = (unsigned char)(0xc0 | v >> 6);
		o[1] = (unsigned char)(0x80 | (v & 0x3f));
		return 2;
	}
	if (v < 0x10000) {
		o[0] = (unsigned char)(0xe0 | v >> 12);
		o[1] = (unsigned char)(0x80 | (v >> 6 & 0x3f));
		o[2] = (unsigned char)(0x80 | (v & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | v >> 18);
	o[1] = (unsigned char)(0x80 | (v >> 12 & 0x3f));
	o[2] = (unsigned char)(0x80 | (v >> 6 & 0x3f));
	o[3] = (unsigned char)(0x80 | (v & 0x3f));
	return 4;
}

/*
 * Reads the string whose opening quote r->p is at.  Plain text (printable
 * ASCII without escapes) is returned in place: *ret_s points into the input
 * and *ret_buf is NULL.  Otherwise it is decoded into *ret_buf (malloc'd,
 * the caller frees) and *ret_s points to that.  Returns false to decline.
 */
static bool
read_string(struct reader *r, const char **ret_s, size_t *ret_len, unsigned char **ret_buf)
{
	const unsigned char *start = ++r->p, *q = start, *close = start;
	unsigned char *buf, *o;

	while (q < r->end && plain[*q])
		q++;
	if (q < r->end && *q == '"') {
		*ret_s = (const char *)start;
		*ret_len = (size_t)(q - start);
		*ret_buf = NULL;
		r->p = q + 1;
		return true;
	}
	/* Decoded, every form is at most as long as its text: room for the
	 * text up to the closing quote, the first one after an even number
	 * of backslashes. */
	for (;;) {
		const unsigned char *b;

		close = memchr(close, '"', (size_t)(r->end - close));
		if (close == NULL)
			return false;
		for (b = close; b > start && b[-1] == '\\'; b--)
			;
		if ((close - b) % 2 == 0)
			break;
		close++;
	}
	buf = malloc((size_t)(close - start) + 1);
	if (buf == NULL)
		return false;
	memcpy(buf, start, (size_t)(q - start));
	o = buf + (q - start);
	while (q < r->end) {
		unsigned c = *q;

		if (plain[c]) {
			const unsigned char *run = q;

			while (++q < close && plain[*q])
				;
			memcpy(o, run, (size_t)(q - run));
			o += q - run;
			continue;
		}
		if (c == '"') {
			*ret_s = (const char *)buf;
			*ret_len = (size_t)(o - buf);
			*ret_buf = buf;
			r->p = q + 1;
			return true;
		}
		if (c < 0x20)
			break;
		if (c >= 0x80) {
			size_t n = utf8_len(q, r->end);

			if (n == 0)
				break;
			memcpy(o, q, n);
			o += n;
			q += n;
			continue;
		}
		if (r->end - q < 2)
			break;
		switch (q[1]) {
		case '"':
		case '\\':
		case '/':
			*o++ = q[1];
			q += 2;
			continue;
		case 'b':
			*o++ = '\b';
			q += 2;
			continue;
		case 'f':
			*o++ = '\f';
			q += 2;
			continue;
		case 'n':
			*o++ = '\n';
			q += 2;
			continue;
		case 'r':
			*o++ = '\r';
			q += 2;
			continue;
		case 't':
			*o++ = '\t';
			q += 2;
			continue;
		case 'u': {
			int v, lo;

			if (r->end - q < 6 || (v = hex4(q + 2)) <= 0 ||
			    (v >= 0xdc00 && v <= 0xdfff))
				goto decline; /* bad, \u0000 or a lone low surrogate */
			q += 6;
			if (v >= 0xd800 && v <= 0xdbff) {
				if (r->end - q < 6 || q[0] != '\\' || q[1] != 'u' ||
				    (lo = hex4(q + 2)) < 0xdc00 || lo > 0xdfff)
					goto decline;
				q += 6;
				v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
			}
			o += put_utf8(o, (uint32_t)v);
			continue;
		}
		default:
			goto decline;
		}
	}
decline:
	free(buf);
	return false;
}

static bool
is_digit(const struct reader *r, const unsigned char *q)
{
	return q < r->end && *q >= '0' && *q <= '9';
}

/* A real, as jansson reads it: strtod(3) of the token, refused on
 * overflow.  Declined when strtod does not take the whole token (a locale
 * whose decimal point is not '.'), and on underflow. */
static json_t *
read_real(struct reader *r, const unsigned char *q)
{
	char text[64], *end;
	size_t n = (size_t)(q - r->p);
	double d;

	if (n >= sizeof(text))
		return NULL;
	memcpy(text, r->p, n);
	text[n] = '\0';
	errno = 0;
	d = strtod(text, &end);
	if (end != text + n || errno == ERANGE)
		return NULL;
	r->p = q;
	return json_real(d);
}

static json_t *
read_number(struct reader *r)
{
	const unsigned char *q = r->p;
	int64_t v = 0;
	int digits = 0;

	if (*q == '-')
		q++;
	if (is_digit(r, q) && *q == '0') {
		q++;
		digits = 1;
		if (is_digit(r, q))
			return NULL; /* a leading zero */
	} else {
		for (; is_digit(r, q); q++)
			if (++digits <= 18)
				v = v * 10 + (*q - '0');
	}
	if (digits == 0)
		return NULL;
	if (q < r->end && (*q == '.' || *q == 'e' || *q == 'E')) {
		if (*q == '.') {
			if (!is_digit(r, ++q))
				return NULL;
			while (is_digit(r, q))
				q++;
		}
		if (q < r->end && (*q == 'e' || *q == 'E')) {
			q++;
			if (q < r->end && (*q == '+' || *q == '-'))
				q++;
			if (!is_digit(r, q))
				return NULL;
			while (is_digit(r, q))
				q++;
		}
		return read_real(r, q);
	}
	if (digits > 18)
		return NULL; /* may not fit: jansson's strtoll decides */
	if (*r->p == '-')
		v = -v;
	r->p = q;
	return json_integer(v);
}

static bool
literal(struct reader *r, const char *word, size_t n)
{
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return false;
	r->p += n;
	return true;
}

static json_t *
read_array(struct reader *r)
{
	json_t *a = json_array();

	r->p++;
	skip_ws(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		return a;
	}
	while (a != NULL) {
		json_t *v = read_value(r);

		if (v == NULL || json_array_append_new(a, v) < 0)
			break;
		skip_ws(r);
		if (r->p >= r->end)
			break;
		if (*r->p == ']') {
			r->p++;
			return a;
		}
		if (*r->p != ',')
			break;
		r->p++;
	}
	json_decref(a);
	return NULL;
}

static json_t *
read_object(struct reader *r)
{
	json_t *o = json_object();

	r->p++;
	skip_ws(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return o;
	}
	while (o != NULL) {
		unsigned char *buf = NULL;
		const char *key;
		size_t klen;
		json_t *v;
		bool ok;

		if (r->p >= r->end || *r->p != '"' || !read_string(r, &key, &klen, &buf))
			break;
		skip_ws(r);
		ok = r->p < r->end && *r->p == ':' && json_object_getn(o, key, klen) == NULL;
		if (ok) {
			r->p++;
			v = read_value(r);
			ok = v != NULL && json_object_setn_new_nocheck(o, key, klen, v) == 0;
		}
		free(buf);
		if (!ok)
			break;
		skip_ws(r);
		if (r->p >= r->end)
			break;
		if (*r->p == '}') {
			r->p++;
			return o;
		}
		if (*r->p != ',')
			break;
		r->p++;
		skip_ws(r);
	}
	json_decref(o);
	return NULL;
}

static json_t *
read_value(struct reader *r)
{
	skip_ws(r);
	if (r->p >= r->end)
		return NULL;
	switch (*r->p) {
	case '{':
	case '[': {
		json_t *v;

		if (++r->depth > r->max_depth)
			return NULL;
		v = *r->p == '{' ? read_object(r) : read_array(r);
		r->depth--;
		return v;
	}
	case '"': {
		unsigned char *buf;
		const char *s;
		size_t len;
		json_t *v;

		if (!read_string(r, &s, &len, &buf))
			return NULL;
		v = json_stringn_nocheck(s, len);
		free(buf);
		return v;
	}
	case 't':
		return literal(r, "true", 4) ? json_true() : NULL;
	case 'f':
		return literal(r, "false", 5) ? json_false() : NULL;
	case 'n':
		return literal(r, "null", 4) ? json_null() : NULL;
	default:
		return *r->p == '-' || (*r->p >= '0' && *r->p <= '9') ? read_number(r) : NULL;
	}
}

json_t *
rpc_json_fast_parse(const void *buf, size_t len, size_t max_depth)
{
	struct reader r;
	json_t *v;

	if (buf == NULL)
		return NULL;
	r.p = buf;
	r.end = r.p + len;
	r.depth = 0;
	r.max_depth = max_depth;
	v = read_value(&r);
	if (v == NULL)
		return NULL;
	skip_ws(&r);
	if (r.p != r.end) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* One of the envelope's two string members, as read_string left it. */
struct member {
	const char *s;
	size_t len;
	unsigned char *buf;
	bool seen;
};

bool
rpc_envelope_fast_split(const void *buf, size_t len, struct rpc_envelope_parts *ret)
{
	struct reader r;
	struct member ver = {0}, msg = {0};
	bool ok = false;

	if (buf == NULL)
		return false;
	r.p = buf;
	r.end = r.p + len;
	skip_ws(&r);
	if (r.p >= r.end || *r.p != '{')
		return false;
	r.p++;
	for (int i = 0; i < 2; i++) {
		struct member *m;
		const char *key;
		unsigned char *key_buf;
		size_t key_len;

		skip_ws(&r);
		if (r.p >= r.end || *r.p != '"' || !read_string(&r, &key, &key_len, &key_buf))
			goto out;
		if (key_len == 12 && memcmp(key, "oslo.version", 12) == 0)
			m = &ver;
		else if (key_len == 12 && memcmp(key, "oslo.message", 12) == 0)
			m = &msg;
		else
			m = NULL;
		free(key_buf);
		if (m == NULL || m->seen)
			goto out; /* another member, or a duplicate: jansson judges */
		skip_ws(&r);
		if (r.p >= r.end || *r.p != ':')
			goto out;
		r.p++;
		skip_ws(&r);
		if (r.p >= r.end || *r.p != '"' || !read_string(&r, &m->s, &m->len, &m->buf))
			goto out;
		m->seen = true;
		skip_ws(&r);
		if (r.p < r.end && *r.p == (i == 0 ? ',' : '}'))
			r.p++;
		else
			goto out;
	}
	skip_ws(&r);
	if (r.p != r.end)
		goto out;
	ret->version = ver.s;
	ret->version_len = ver.len;
	ret->version_buf = ver.buf;
	ret->message = msg.s;
	ret->message_len = msg.len;
	ret->message_buf = msg.buf;
	ok = true;
out:
	if (!ok) {
		free(ver.buf);
		free(msg.buf);
	}
	return ok;
}

/* ---- the writer ---- */

struct writer {
	char *buf;
	size_t len, cap;
	bool failed; /* out of memory, or declined */
};

static bool
reserve(struct writer *w, size_t more)
{
	size_t cap;
	char *p;

	if (w->failed)
		return false;
	if (w->len + more <= w->cap)
		return true;
	cap = w->cap ? w->cap : 256;
	while (cap < w->len + more)
		cap *= 2;
	p = realloc(w->buf, cap);
	if (p == NULL) {
		w->failed = true;
		return false;
	}
	w->buf = p;
	w->cap = cap;
	return true;
}

/* Appends s as the envelope's string holds it: '"' and '\' escaped once
 * more (the inner text is ASCII without control characters). */
static void
put_inner(struct writer *w, const char *s, size_t n)
{
	if (!reserve(w, 2 * n))
		return;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			w->buf[w->len++] = '\\';
		w->buf[w->len++] = s[i];
	}
}

static void
put_raw(struct writer *w, const char *s, size_t n)
{
	if (!reserve(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

/* A string as rpc_json_dumps() writes it (JSON_ENSURE_ASCII, \u escapes in
 * lower case), put into the envelope.  Declines invalid UTF-8, on which
 * jansson fails. */
static void
put_string(struct writer *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	put_inner(w, "\"", 1);
	while (p < end && !w->failed) {
		const unsigned char *run = p;
		char esc[16];
		uint32_t v;
		size_t k;

		while (p < end && plain[*p])
			p++;
		if (p > run) {
			put_inner(w, (const char *)run, (size_t)(p - run));
			continue;
		}
		switch (*p) {
		case '"':
			put_inner(w, "\\\"", 2);
			p++;
			continue;
		case '\\':
			put_inner(w, "\\\\", 2);
			p++;
			continue;
		case '\b':
			put_inner(w, "\\b", 2);
			p++;
			continue;
		case '\f':
			put_inner(w, "\\f", 2);
			p++;
			continue;
		case '\n':
			put_inner(w, "\\n", 2);
			p++;
			continue;
		case '\r':
			put_inner(w, "\\r", 2);
			p++;
			continue;
		case '\t':
			put_inner(w, "\\t", 2);
			p++;
			continue;
		default:
			break;
		}
		if (*p < 0x80) {
			v = *p;
			k = 1;
		} else {
			k = utf8_len(p, end);
			if (k == 0) {
				w->failed = true;
				return;
			}
			v = k == 2 ? (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f)
			    : k == 3
			        ? (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 |
			              (p[2] & 0x3f)
			        : (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
			              (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
		}
		p += k;
		if (v >= 0x10000) {
			uint32_t x = v - 0x10000, hi = 0xd800 | (x >> 10),
			         lo = 0xdc00 | (x & 0x3ff);

			memcpy(esc, "\\ud800\\udc00", 12);
			esc[2] = hex[hi >> 12 & 15];
			esc[3] = hex[hi >> 8 & 15];
			esc[4] = hex[hi >> 4 & 15];
			esc[5] = hex[hi & 15];
			esc[8] = hex[lo >> 12 & 15];
			esc[9] = hex[lo >> 8 & 15];
			esc[10] = hex[lo >> 4 & 15];
			esc[11] = hex[lo & 15];
			put_inner(w, esc, 12);
		} else {
			memcpy(esc, "\\u0000", 6);
			esc[2] = hex[v >> 12 & 15];
			esc[3] = hex[v >> 8 & 15];
			esc[4] = hex[v >> 4 & 15];
			esc[5] = hex[v & 15];
			put_inner(w, esc, 6);
		}
	}
	put_inner(w, "\"", 1);
}

static void
put_integer(struct writer *w, json_int_t i)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, i);

	put_raw(w, text, (size_t)n);
}

static void
put_value(struct writer *w, json_t *j, size_t depth)
{
	const char *key;
	json_t *v;
	size_t i, n = 0;

	if (depth > RPC_JSON_WRITE_MAX_DEPTH) {
		w->failed = true;
		return;
	}
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		put_raw(w, "{", 1);
		json_object_foreach (j, key, v) {
			if (n++ > 0)
				put_raw(w, ",", 1);
			put_string(w, key, json_object_iter_key_len(json_object_key_to_iter(key)));
			put_raw(w, ":", 1);
			put_value(w, v, depth + 1);
		}
		put_raw(w, "}", 1);
		return;
	case JSON_ARRAY:
		put_raw(w, "[", 1);
		json_array_foreach (j, i, v) {
			if (i > 0)
				put_raw(w, ",", 1);
			put_value(w, v, depth + 1);
		}
		put_raw(w, "]", 1);
		return;
	case JSON_STRING:
		put_string(w, json_string_value(j), json_string_length(j));
		return;
	case JSON_INTEGER:
		put_integer(w, json_integer_value(j));
		return;
	case JSON_TRUE:
		put_raw(w, "true", 4);
		return;
	case JSON_FALSE:
		put_raw(w, "false", 5);
		return;
	case JSON_NULL:
		put_raw(w, "null", 4);
		return;
	default: /* reals: jansson's own formatting */
		w->failed = true;
		return;
	}
}

char *
rpc_envelope_fast(json_t *inner, size_t *ret_len)
{
	static const char head[] = "{\"oslo.version\":\"2.0\",\"oslo.message\":\"";
	struct writer w = {NULL, 0, 0, false};

	if (!json_is_object(inner) && !json_is_array(inner))
		return NULL; /* json_dumps() without JSON_ENCODE_ANY fails on those */
	put_raw(&w, head, sizeof(head) - 1);
	put_value(&w, inner, 0);
	put_raw(&w, "\"}", 3); /* with the NUL */
	if (w.failed) {
		free(w.buf);
		return NULL;
	}
	if (ret_len != NULL)
		*ret_len = w.len - 1;
	return w.buf;
}
