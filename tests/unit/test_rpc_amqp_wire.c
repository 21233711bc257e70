/* SPDX-License-Identifier: Apache-2.0 */
/* rpc_amqp_wire: the frames ferry encodes itself are byte for byte the ones
 * rabbitmq-c's own encoders make for the same publish, ack and reject. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <criterion/criterion.h>

#include "rpc_amqp_priv.h"
#include "rpc_amqp_wire.h"

struct frame {
	uint8_t type;
	uint16_t channel;
	const unsigned char *payload;
	size_t size;
};

static uint64_t
get_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Splits @buf into frames, asserting each frame's size and end octet. */
static size_t
split(const unsigned char *buf, size_t len, struct frame *out, size_t max)
{
	size_t n = 0, off = 0;

	while (off < len) {
		cr_assert_lt(n, max);
		cr_assert_geq(len - off, 8u);
		out[n].type = buf[off];
		out[n].channel = (uint16_t)get_be(buf + off + 1, 2);
		out[n].size = (size_t)get_be(buf + off + 3, 4);
		cr_assert_geq(len - off, out[n].size + 8);
		out[n].payload = buf + off + 7;
		cr_assert_eq(buf[off + 7 + out[n].size], 0xCE, "frame %zu has no end octet", n);
		off += out[n].size + 8;
		n++;
	}
	return n;
}

/* The method payload rabbitmq-c encodes: method id, then the arguments. */
static size_t
lib_method(amqp_method_number_t id, void *decoded, unsigned char *out, size_t cap)
{
	amqp_bytes_t b = {cap - 4, out + 4};
	int n = amqp_encode_method(id, decoded, b);

	cr_assert_geq(n, 0, "amqp_encode_method: %d", n);
	out[0] = (unsigned char)(id >> 24);
	out[1] = (unsigned char)(id >> 16);
	out[2] = (unsigned char)(id >> 8);
	out[3] = (unsigned char)id;
	return (size_t)n + 4;
}

static void
check_publish_on(uint16_t channel, int expiration_ms, size_t body_len, size_t frame_max)
{
	struct rpc_wire w = {0};
	struct frame f[64];
	unsigned char want[512];
	char *body = malloc(body_len + 1);
	amqp_basic_publish_t pub = {0};
	amqp_basic_properties_t p;
	char exp[16];
	size_t n, wn, got_body = 0;
	amqp_bytes_t b = {sizeof(want) - 12, want + 12};
	int pn;

	cr_assert_not_null(body);
	for (size_t i = 0; i < body_len; i++)
		body[i] = (char)('a' + i % 26);
	struct rpc_wire_publish m = {
	    .channel = channel,
	    .exchange = "",
	    .routing_key = "reply_0123456789abcdef0123456789abcdef",
	    .mandatory = true,
	    .expiration_ms = expiration_ms,
	    .body = body,
	    .len = body_len,
	    .frame_max = frame_max,
	};
	cr_assert_eq(rpc_wire_publish(&w, &m), 0);
	n = split(w.buf, w.len, f, 64);
	cr_assert_eq(n, 2 + (body_len + frame_max - 9) / (frame_max - 8));

	pub.exchange = amqp_cstring_bytes(m.exchange);
	pub.routing_key = amqp_cstring_bytes(m.routing_key);
	pub.mandatory = 1;
	wn = lib_method(AMQP_BASIC_PUBLISH_METHOD, &pub, want, sizeof(want));
	cr_assert_eq(f[0].type, AMQP_FRAME_METHOD);
	cr_assert_eq(f[0].channel, channel);
	cr_assert_eq(f[0].size, wn);
	cr_assert_arr_eq(f[0].payload, want, wn);

	/* What the TLS path hands amqp_basic_publish. */
	rpc_amqp_publish_props(&p, expiration_ms, exp, sizeof(exp));
	pn = amqp_encode_properties(AMQP_BASIC_CLASS, &p, b);
	cr_assert_geq(pn, 0);
	/* class, weight, body size: as amqp_send_frame writes them */
	want[0] = 0;
	want[1] = 60;
	want[2] = want[3] = 0;
	for (int i = 0; i < 8; i++)
		want[4 + i] = (unsigned char)((uint64_t)body_len >> (56 - 8 * i));
	cr_assert_eq(f[1].type, AMQP_FRAME_HEADER);
	cr_assert_eq(f[1].channel, channel);
	cr_assert_eq(f[1].size, 12 + (size_t)pn);
	cr_assert_arr_eq(f[1].payload, want, 12 + (size_t)pn);

	for (size_t i = 2; i < n; i++) {
		cr_assert_eq(f[i].type, AMQP_FRAME_BODY);
		cr_assert_eq(f[i].channel, channel);
		cr_assert_leq(f[i].size, frame_max - 8);
		cr_assert_arr_eq(f[i].payload, body + got_body, f[i].size);
		got_body += f[i].size;
	}
	cr_assert_eq(got_body, body_len);
	rpc_wire_free(&w);
	free(body);
}

/* On channel 2, the confirm channel the outbox publishes on. */
static void
check_publish(int expiration_ms, size_t body_len, size_t frame_max)
{
	check_publish_on(2, expiration_ms, body_len, frame_max);
}

Test(rpc_amqp_wire, publish_is_what_rabbitmq_c_encodes)
{
	check_publish(0, 57, 131072);
	check_publish(30000, 57, 131072);
	check_publish(0, 0, 131072);
}

/* Channel 3 is never in confirm mode: the replies to read-only calls. */
Test(rpc_amqp_wire, unconfirmed_channel_publish_is_what_rabbitmq_c_encodes)
{
	check_publish_on(3, 0, 57, 131072);
	check_publish_on(3, 0, 0, 131072);
	check_publish_on(3, 0, 4096 * 3, 4096);
}

/* One pass's send(2): the ack of a request, a confirmed publish and an
 * unconfirmed reply, each frame on its own channel, in order. */
Test(rpc_amqp_wire, one_buffer_carries_frames_of_every_channel)
{
	struct rpc_wire w = {0};
	struct frame f[16];
	struct rpc_wire_publish confirmed = {.channel = 2,
	    .exchange = "nova",
	    .routing_key = "versioned_notifications.info",
	    .body = "{\"a\":1}",
	    .len = 7,
	    .frame_max = 131072};
	struct rpc_wire_publish reply = {.channel = 3,
	    .exchange = "",
	    .routing_key = "reply_0123",
	    .mandatory = true,
	    .body = "[]",
	    .len = 2,
	    .frame_max = 131072};
	const uint16_t want_ch[] = {2, 2, 2, 3, 3, 3, 1};
	const uint8_t want_type[] = {AMQP_FRAME_METHOD, AMQP_FRAME_HEADER, AMQP_FRAME_BODY,
	    AMQP_FRAME_METHOD, AMQP_FRAME_HEADER, AMQP_FRAME_BODY, AMQP_FRAME_METHOD};

	cr_assert_eq(rpc_wire_publish(&w, &confirmed), 0);
	cr_assert_eq(rpc_wire_publish(&w, &reply), 0);
	cr_assert_eq(rpc_wire_ack(&w, 1, 9), 0);
	cr_assert_eq(split(w.buf, w.len, f, 16), 7u);
	for (size_t i = 0; i < 7; i++) {
		cr_assert_eq(f[i].channel, want_ch[i], "frame %zu", i);
		cr_assert_eq(f[i].type, want_type[i], "frame %zu", i);
	}
	cr_assert_arr_eq(f[5].payload, "[]", 2);
	rpc_wire_free(&w);
}

Test(rpc_amqp_wire, large_bodies_are_split_at_frame_max)
{
	check_publish(0, 100, 4096);
	check_publish(60000, 4096 * 3, 4096); /* 4088-byte chunks: 4 frames */
	check_publish(0, 4088, 4096);         /* exactly one full frame */
}

static void
check_tag_method(bool ack, uint64_t tag, bool bit)
{
	struct rpc_wire w = {0};
	struct frame f[2];
	unsigned char want[64];
	size_t wn;

	if (ack) {
		amqp_basic_ack_t m = {.delivery_tag = tag, .multiple = bit};

		cr_assert_eq(rpc_wire_ack(&w, 1, tag), 0);
		wn = lib_method(AMQP_BASIC_ACK_METHOD, &m, want, sizeof(want));
	} else {
		amqp_basic_reject_t m = {.delivery_tag = tag, .requeue = bit};

		cr_assert_eq(rpc_wire_reject(&w, 1, tag, bit), 0);
		wn = lib_method(AMQP_BASIC_REJECT_METHOD, &m, want, sizeof(want));
	}
	cr_assert_eq(split(w.buf, w.len, f, 2), 1);
	cr_assert_eq(f[0].type, AMQP_FRAME_METHOD);
	cr_assert_eq(f[0].channel, 1);
	cr_assert_eq(f[0].size, wn);
	cr_assert_arr_eq(f[0].payload, want, wn);
	rpc_wire_free(&w);
}

Test(rpc_amqp_wire, ack_and_reject_are_what_rabbitmq_c_encodes)
{
	check_tag_method(true, 1, false);
	check_tag_method(true, 0x0102030405060708ull, false);
	check_tag_method(false, 77, true);
	check_tag_method(false, 78, false);
}

Test(rpc_amqp_wire, frames_accumulate_and_clear_keeps_memory)
{
	struct rpc_wire w = {0};
	struct frame f[16];
	unsigned char *buf;
	struct rpc_wire_publish m = {.channel = 2,
	    .exchange = "nova",
	    .routing_key = "x",
	    .body = "{}",
	    .len = 2,
	    .frame_max = 131072};

	cr_assert_eq(rpc_wire_publish(&w, &m), 0);
	cr_assert_eq(rpc_wire_ack(&w, 1, 5), 0);
	cr_assert_eq(rpc_wire_publish(&w, &m), 0);
	cr_assert_eq(rpc_wire_ack(&w, 1, 6), 0);
	cr_assert_eq(split(w.buf, w.len, f, 16), 8);
	cr_assert_eq(f[3].type, AMQP_FRAME_METHOD);
	cr_assert_eq(f[3].channel, 1);
	buf = w.buf;
	rpc_wire_clear(&w);
	cr_assert_eq(w.len, 0u);
	cr_assert_eq(w.buf, buf);
	rpc_wire_free(&w);
	cr_assert_null(w.buf);
}

Test(rpc_amqp_wire, refuses_what_amqp_cannot_carry)
{
	struct rpc_wire w = {0};
	char longname[300];
	struct rpc_wire_publish m = {.channel = 2,
	    .exchange = "",
	    .routing_key = longname,
	    .body = "{}",
	    .len = 2,
	    .frame_max = 131072};

	memset(longname, 'k', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	cr_assert_eq(rpc_wire_publish(&w, &m), -EINVAL);
	cr_assert_eq(w.len, 0u);
	m.routing_key = "ok";
	m.frame_max = 8;
	cr_assert_eq(rpc_wire_publish(&w, &m), -EINVAL);
	rpc_wire_free(&w);
}
