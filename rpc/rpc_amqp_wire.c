/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rpc_amqp_wire: hand-encoded AMQP 0-9-1 frames (spec section 4.2.3: type,
 * channel, payload size, payload, 0xCE), big-endian throughout.
 */
#include "rpc_amqp_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_METHOD   1
#define FRAME_HEADER   2
#define FRAME_BODY     3
#define FRAME_END      0xCE
#define FRAME_OVERHEAD 8 /* 7-byte header + end octet */

#define CLASS_BASIC   60
#define BASIC_PUBLISH 40
#define BASIC_ACK     80
#define BASIC_REJECT  90

/* Property flags of class basic, in the order their fields follow. */
#define PROP_CONTENT_TYPE     0x8000
#define PROP_CONTENT_ENCODING 0x4000
#define PROP_HEADERS          0x2000
#define PROP_DELIVERY_MODE    0x1000
#define PROP_PRIORITY         0x0800
#define PROP_EXPIRATION       0x0100

#define CONTENT_TYPE     "application/json"
#define CONTENT_ENCODING "utf-8"

static int
reserve(struct rpc_wire *w, size_t more)
{
	size_t cap;
	unsigned char *b;

	if (w->cap - w->len >= more)
		return 0;
	cap = w->cap > 0 ? w->cap : 4096;
	while (cap - w->len < more) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	b = realloc(w->buf, cap);
	if (b == NULL)
		return -ENOMEM;
	w->buf = b;
	w->cap = cap;
	return 0;
}

static unsigned char *
put8(unsigned char *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static unsigned char *
put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	return p + 2;
}

static unsigned char *
put32(unsigned char *p, uint32_t v)
{
	p = put16(p, (uint16_t)(v >> 16));
	return put16(p, (uint16_t)v);
}

static unsigned char *
put64(unsigned char *p, uint64_t v)
{
	p = put32(p, (uint32_t)(v >> 32));
	return put32(p, (uint32_t)v);
}

static unsigned char *
put_shortstr(unsigned char *p, const char *s, size_t n)
{
	p = put8(p, (uint8_t)n);
	memcpy(p, s, n);
	return p + n;
}

/* The frame header at @p for a payload of @size bytes. */
static unsigned char *
frame_start(unsigned char *p, uint8_t type, uint16_t channel, size_t size)
{
	p = put8(p, type);
	p = put16(p, channel);
	return put32(p, (uint32_t)size);
}

int
rpc_wire_publish(struct rpc_wire *w, const struct rpc_wire_publish *m)
{
	size_t ex_len = strlen(m->exchange);
	size_t rk_len = strlen(m->routing_key);
	size_t chunk = m->frame_max > FRAME_OVERHEAD ? m->frame_max - FRAME_OVERHEAD : 0;
	size_t n_body, method_size, header_size, total;
	char exp[16];
	size_t exp_len = 0;
	uint16_t flags = PROP_CONTENT_TYPE | PROP_CONTENT_ENCODING | PROP_HEADERS |
	                 PROP_DELIVERY_MODE | PROP_PRIORITY;
	unsigned char *p;

	if (ex_len > 255 || rk_len > 255 || chunk == 0)
		return -EINVAL;
	if (m->expiration_ms > 0) {
		exp_len = (size_t)snprintf(exp, sizeof(exp), "%d", m->expiration_ms);
		flags |= PROP_EXPIRATION;
	}
	n_body = (m->len + chunk - 1) / chunk;
	/* class, method, ticket, exchange, routing key, bits */
	method_size = 2 + 2 + 2 + 1 + ex_len + 1 + rk_len + 1;
	/* class, weight, body size, flags, then the properties */
	header_size = 2 + 2 + 8 + 2 + 1 + strlen(CONTENT_TYPE) + 1 + strlen(CONTENT_ENCODING) + 4 +
	              1 + 1 + (exp_len > 0 ? 1 + exp_len : 0);
	total = method_size + header_size + 2 * FRAME_OVERHEAD + n_body * FRAME_OVERHEAD + m->len;
	if (reserve(w, total) < 0)
		return -ENOMEM;
	p = w->buf + w->len;

	p = frame_start(p, FRAME_METHOD, m->channel, method_size);
	p = put16(p, CLASS_BASIC);
	p = put16(p, BASIC_PUBLISH);
	p = put16(p, 0); /* ticket */
	p = put_shortstr(p, m->exchange, ex_len);
	p = put_shortstr(p, m->routing_key, rk_len);
	p = put8(p, m->mandatory ? 1 : 0); /* immediate: never */
	p = put8(p, FRAME_END);

	p = frame_start(p, FRAME_HEADER, m->channel, header_size);
	p = put16(p, CLASS_BASIC);
	p = put16(p, 0); /* weight */
	p = put64(p, m->len);
	p = put16(p, flags);
	p = put_shortstr(p, CONTENT_TYPE, strlen(CONTENT_TYPE));
	p = put_shortstr(p, CONTENT_ENCODING, strlen(CONTENT_ENCODING));
	p = put32(p, 0); /* headers: an empty table */
	p = put8(p, 2);  /* delivery mode: persistent */
	p = put8(p, 0);  /* priority */
	if (exp_len > 0)
		p = put_shortstr(p, exp, exp_len);
	p = put8(p, FRAME_END);

	for (size_t done = 0; done < m->len;) {
		size_t n = m->len - done < chunk ? m->len - done : chunk;

		p = frame_start(p, FRAME_BODY, m->channel, n);
		memcpy(p, (const unsigned char *)m->body + done, n);
		p += n;
		p = put8(p, FRAME_END);
		done += n;
	}
	w->len = (size_t)(p - w->buf);
	return 0;
}

static int
tag_method(struct rpc_wire *w, uint16_t channel, uint16_t method, uint64_t tag, bool bit)
{
	const size_t size = 2 + 2 + 8 + 1;
	unsigned char *p;

	if (reserve(w, size + FRAME_OVERHEAD) < 0)
		return -ENOMEM;
	p = w->buf + w->len;
	p = frame_start(p, FRAME_METHOD, channel, size);
	p = put16(p, CLASS_BASIC);
	p = put16(p, method);
	p = put64(p, tag);
	p = put8(p, bit ? 1 : 0);
	p = put8(p, FRAME_END);
	w->len = (size_t)(p - w->buf);
	return 0;
}

int
rpc_wire_ack(struct rpc_wire *w, uint16_t channel, uint64_t tag)
{
	return tag_method(w, channel, BASIC_ACK, tag, false);
}

int
rpc_wire_reject(struct rpc_wire *w, uint16_t channel, uint64_t tag, bool requeue)
{
	return tag_method(w, channel, BASIC_REJECT, tag, requeue);
}

void
rpc_wire_clear(struct rpc_wire *w)
{
	w->len = 0;
	w->off = 0;
}

void
rpc_wire_free(struct rpc_wire *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}
