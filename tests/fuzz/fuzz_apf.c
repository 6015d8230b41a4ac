/* SPDX-License-Identifier: Apache-2.0 */
/*
 * APF frames from the LME client: the input is one message. Properties: apf_decode returns 0 or
 * MEI_E_PROTOCOL; on success every borrowed string lies inside the input, ports fit 16 bits, the
 * type is known; the names of the type and reasons exist. Round trip: a decoded message that the
 * encoders can express (strings without NUL bytes) is encoded again and must decode to the same
 * fields (reserved bytes and skipped trailers are not compared: the encoders write zeros).
 */
#include "fuzz.h"
#include "mei.h"

#define PORT_MAX 65535u

static bool inside(const uint8_t *data, size_t size, struct apf_str s)
{
	if (s.len == 0)
		return true;
	return s.p >= data && s.p <= data + size && s.len <= (size_t)(data + size - s.p);
}

static bool same_str(struct apf_str a, struct apf_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* A C string copy of S, or NULL when S holds a NUL (the encoders take C strings). */
static char *cstr(struct apf_str s)
{
	char *out;

	if (s.len && memchr(s.p, '\0', s.len))
		return NULL;
	out = fuzz_alloc((size_t)s.len + 1);
	if (s.len)
		memcpy(out, s.p, s.len);
	out[s.len] = '\0';
	return out;
}

static void check_strings(const uint8_t *data, size_t size, const struct apf_msg *m)
{
	switch (m->type) {
	case APF_SERVICE_REQUEST:
	case APF_SERVICE_ACCEPT:
		FUZZ_CHECK(inside(data, size, m->service));
		break;
	case APF_USERAUTH_REQUEST:
	case APF_USERAUTH_FAILURE:
		FUZZ_CHECK(inside(data, size, m->userauth.user));
		FUZZ_CHECK(inside(data, size, m->userauth.service));
		FUZZ_CHECK(inside(data, size, m->userauth.method));
		break;
	case APF_GLOBAL_REQUEST:
		FUZZ_CHECK(inside(data, size, m->global.name));
		FUZZ_CHECK(inside(data, size, m->global.address));
		FUZZ_CHECK(!m->global.has_forward || m->global.port <= PORT_MAX);
		break;
	case APF_REQUEST_SUCCESS:
		FUZZ_CHECK(!m->success.has_port || m->success.port <= PORT_MAX);
		break;
	case APF_CHANNEL_OPEN:
		FUZZ_CHECK(inside(data, size, m->open.channel_type));
		FUZZ_CHECK(inside(data, size, m->open.connected_address));
		FUZZ_CHECK(inside(data, size, m->open.originator_address));
		FUZZ_CHECK(!m->open.has_endpoints || (m->open.connected_port <= PORT_MAX &&
		                                      m->open.originator_port <= PORT_MAX));
		break;
	case APF_CHANNEL_DATA: {
		struct apf_str d = {m->data.bytes, m->data.len};

		FUZZ_CHECK(inside(data, size, d));
		FUZZ_CHECK(m->data.len == size - APF_DATA_HEADER_LEN);
		break;
	}
	default:
		break;
	}
}

/* Encode M again; 0 when the encoders cannot say it (then there is nothing to compare). */
static size_t encode(const struct apf_msg *m, uint8_t *out, size_t cap)
{
	char *a = NULL, *b = NULL, *c = NULL;
	size_t n = 0;

	switch (m->type) {
	case APF_DISCONNECT:
		return apf_encode_disconnect(out, cap, m->disconnect.reason);
	case APF_SERVICE_REQUEST:
	case APF_SERVICE_ACCEPT:
		if ((a = cstr(m->service)))
			n = apf_encode_service(out, cap, m->type, a);
		break;
	case APF_USERAUTH_SUCCESS:
	case APF_REQUEST_FAILURE:
		return apf_encode_bare(out, cap, m->type);
	case APF_GLOBAL_REQUEST:
		if (m->global.has_forward && (a = cstr(m->global.name)) &&
		    (b = cstr(m->global.address)))
			n = apf_encode_global_request(out, cap, a, m->global.want_reply, b,
			                              m->global.port);
		break;
	case APF_REQUEST_SUCCESS:
		if (m->success.has_port)
			return apf_encode_request_success_port(out, cap, m->success.port);
		return apf_encode_bare(out, cap, m->type);
	case APF_CHANNEL_OPEN:
		/* the encoder writes max_packet as "unlimited": compare only what it can say */
		if (m->open.has_endpoints && m->open.max_packet == APF_MAX_PACKET_UNLIMITED &&
		    (a = cstr(m->open.channel_type)) && (b = cstr(m->open.connected_address)) &&
		    (c = cstr(m->open.originator_address)))
			n = apf_encode_channel_open(out, cap, a, m->open.sender, m->open.window, b,
			                            m->open.connected_port, c,
			                            m->open.originator_port);
		break;
	case APF_CHANNEL_OPEN_CONFIRMATION:
		return apf_encode_open_confirmation(out, cap, m->confirm.recipient,
		                                    m->confirm.sender, m->confirm.window,
		                                    m->confirm.reserved);
	case APF_CHANNEL_OPEN_FAILURE:
		return apf_encode_open_failure(out, cap, m->failure.recipient, m->failure.reason);
	case APF_CHANNEL_WINDOW_ADJUST:
		return apf_encode_window_adjust(out, cap, m->adjust.recipient, m->adjust.bytes);
	case APF_CHANNEL_DATA:
		return apf_encode_channel_data(out, cap, m->data.recipient, m->data.bytes,
		                               m->data.len);
	case APF_CHANNEL_CLOSE:
		return apf_encode_channel_close(out, cap, m->close.recipient);
	case APF_PROTOCOL_VERSION:
		return apf_encode_protocol_version(out, cap, m->version.major, m->version.minor,
		                                   m->version.trigger, m->version.uuid);
	default:
		break;
	}
	free(a);
	free(b);
	free(c);
	return n;
}

static void check_same(const struct apf_msg *a, const struct apf_msg *b)
{
	FUZZ_CHECK(a->type == b->type);
	switch (a->type) {
	case APF_DISCONNECT:
		FUZZ_CHECK(a->disconnect.reason == b->disconnect.reason);
		break;
	case APF_SERVICE_REQUEST:
	case APF_SERVICE_ACCEPT:
		FUZZ_CHECK(same_str(a->service, b->service));
		break;
	case APF_GLOBAL_REQUEST:
		FUZZ_CHECK(same_str(a->global.name, b->global.name));
		FUZZ_CHECK(a->global.want_reply == b->global.want_reply);
		FUZZ_CHECK(a->global.has_forward == b->global.has_forward);
		FUZZ_CHECK(same_str(a->global.address, b->global.address));
		FUZZ_CHECK(a->global.port == b->global.port);
		break;
	case APF_REQUEST_SUCCESS:
		FUZZ_CHECK(a->success.has_port == b->success.has_port);
		FUZZ_CHECK(a->success.port == b->success.port);
		break;
	case APF_CHANNEL_OPEN:
		FUZZ_CHECK(same_str(a->open.channel_type, b->open.channel_type));
		FUZZ_CHECK(a->open.sender == b->open.sender && a->open.window == b->open.window);
		FUZZ_CHECK(a->open.max_packet == b->open.max_packet);
		FUZZ_CHECK(same_str(a->open.connected_address, b->open.connected_address));
		FUZZ_CHECK(same_str(a->open.originator_address, b->open.originator_address));
		FUZZ_CHECK(a->open.connected_port == b->open.connected_port);
		FUZZ_CHECK(a->open.originator_port == b->open.originator_port);
		break;
	case APF_CHANNEL_OPEN_CONFIRMATION:
		FUZZ_CHECK(memcmp(&a->confirm, &b->confirm, sizeof(a->confirm)) == 0);
		break;
	case APF_CHANNEL_OPEN_FAILURE:
		FUZZ_CHECK(memcmp(&a->failure, &b->failure, sizeof(a->failure)) == 0);
		break;
	case APF_CHANNEL_WINDOW_ADJUST:
		FUZZ_CHECK(memcmp(&a->adjust, &b->adjust, sizeof(a->adjust)) == 0);
		break;
	case APF_CHANNEL_DATA:
		FUZZ_CHECK(a->data.recipient == b->data.recipient && a->data.len == b->data.len);
		FUZZ_CHECK(a->data.len == 0 ||
		           memcmp(a->data.bytes, b->data.bytes, a->data.len) == 0);
		break;
	case APF_CHANNEL_CLOSE:
		FUZZ_CHECK(a->close.recipient == b->close.recipient);
		break;
	case APF_PROTOCOL_VERSION:
		FUZZ_CHECK(memcmp(&a->version, &b->version, sizeof(a->version)) == 0);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct apf_msg m, again;
	uint8_t *buf;
	size_t n;
	int r = apf_decode(data, size, &m);

	FUZZ_CHECK(r == 0 || r == MEI_E_PROTOCOL);
	FUZZ_CHECK(size == 0 || m.type == data[0]);
	FUZZ_CHECK(apf_message_name(m.type) != NULL);
	if (r != 0)
		return 0;
	FUZZ_CHECK(apf_message_known(m.type));
	check_strings(data, size, &m);
	if (m.type == APF_DISCONNECT)
		FUZZ_CHECK(apf_disconnect_name(m.disconnect.reason) != NULL);
	if (m.type == APF_CHANNEL_OPEN_FAILURE)
		FUZZ_CHECK(apf_open_failure_name(m.failure.reason) != NULL);

	/* The round trip, into a buffer of exactly the input's size: a valid message's encoding
	 * is never longer than the message (it drops skipped trailers). */
	buf = fuzz_alloc(size);
	n = encode(&m, buf, size);
	if (n > 0) {
		FUZZ_CHECK(n <= size);
		r = apf_decode(buf, n, &again);
		FUZZ_CHECK(r == 0);
		check_same(&m, &again);
	}
	free(buf);
	return 0;
}
