/* SPDX-License-Identifier: Apache-2.0 */
/*
 * APF (AMT Port Forwarding) over the LME client, host side: the message codec, the handshake,
 * and the bridge: a Unix listener whose connections are taken one at a time by a thread, each
 * carried over a channel of its own. Layouts are in PROTOCOL.md section 4; every message is
 * parsed and built through the bounded cursor and writer of wire.h.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mei.h"
#include "wire.h"

#define PORT_MAX 65535u

/* ---- names ---- */

bool apf_message_known(uint8_t type)
{
	switch (type) {
	case APF_DISCONNECT:
	case APF_SERVICE_REQUEST:
	case APF_SERVICE_ACCEPT:
	case APF_USERAUTH_REQUEST:
	case APF_USERAUTH_FAILURE:
	case APF_USERAUTH_SUCCESS:
	case APF_GLOBAL_REQUEST:
	case APF_REQUEST_SUCCESS:
	case APF_REQUEST_FAILURE:
	case APF_CHANNEL_OPEN:
	case APF_CHANNEL_OPEN_CONFIRMATION:
	case APF_CHANNEL_OPEN_FAILURE:
	case APF_CHANNEL_WINDOW_ADJUST:
	case APF_CHANNEL_DATA:
	case APF_CHANNEL_CLOSE:
	case APF_PROTOCOL_VERSION:
		return true;
	default:
		return false;
	}
}

const char *apf_message_name(uint8_t type)
{
	switch (type) {
	case APF_DISCONNECT:
		return "DISCONNECT";
	case APF_SERVICE_REQUEST:
		return "SERVICE_REQUEST";
	case APF_SERVICE_ACCEPT:
		return "SERVICE_ACCEPT";
	case APF_USERAUTH_REQUEST:
		return "USERAUTH_REQUEST";
	case APF_USERAUTH_FAILURE:
		return "USERAUTH_FAILURE";
	case APF_USERAUTH_SUCCESS:
		return "USERAUTH_SUCCESS";
	case APF_GLOBAL_REQUEST:
		return "GLOBAL_REQUEST";
	case APF_REQUEST_SUCCESS:
		return "REQUEST_SUCCESS";
	case APF_REQUEST_FAILURE:
		return "REQUEST_FAILURE";
	case APF_CHANNEL_OPEN:
		return "CHANNEL_OPEN";
	case APF_CHANNEL_OPEN_CONFIRMATION:
		return "CHANNEL_OPEN_CONFIRMATION";
	case APF_CHANNEL_OPEN_FAILURE:
		return "CHANNEL_OPEN_FAILURE";
	case APF_CHANNEL_WINDOW_ADJUST:
		return "CHANNEL_WINDOW_ADJUST";
	case APF_CHANNEL_DATA:
		return "CHANNEL_DATA";
	case APF_CHANNEL_CLOSE:
		return "CHANNEL_CLOSE";
	case APF_PROTOCOL_VERSION:
		return "PROTOCOL_VERSION";
	default:
		return "unknown message";
	}
}

const char *apf_open_failure_name(uint32_t reason)
{
	switch (reason) {
	case APF_OPEN_FAILURE_PROHIBITED:
		return "administratively prohibited";
	case APF_OPEN_FAILURE_CONNECT_FAILED:
		return "connect failed";
	case APF_OPEN_FAILURE_UNKNOWN_CHANNEL_TYPE:
		return "unknown channel type";
	case APF_OPEN_FAILURE_RESOURCE_SHORTAGE:
		return "resource shortage";
	default:
		return "unknown reason";
	}
}

const char *apf_disconnect_name(uint32_t reason)
{
	switch (reason) {
	case 1:
		return "host not allowed to connect";
	case APF_DISCONNECT_PROTOCOL_ERROR:
		return "protocol error";
	case APF_DISCONNECT_SERVICE_NOT_AVAILABLE:
		return "service not available";
	case APF_DISCONNECT_PROTOCOL_VERSION_NOT_SUPPORTED:
		return "protocol version not supported";
	case APF_DISCONNECT_CONNECTION_LOST:
		return "connection lost";
	case APF_DISCONNECT_BY_APPLICATION:
		return "by application";
	case 12:
		return "too many connections";
	default:
		return "other reason";
	}
}

/* ---- decoding ---- */

static int get_str(struct cursor *c, struct apf_str *s)
{
	return cur_string_be(c, &s->p, &s->len);
}

static bool str_is(struct apf_str s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && (n == 0 || memcmp(s.p, lit, n) == 0);
}

static int get_port(struct cursor *c, uint32_t *port)
{
	int r = cur_u32be(c, port);

	return r == 0 && *port > PORT_MAX ? MEI_E_PROTOCOL : r;
}

static int decode_disconnect(struct cursor *c, struct apf_msg *m)
{
	int r = cur_u32be(c, &m->disconnect.reason);

	if (r == 0)
		r = cur_skip(c, 2); /* u16 reserved */
	return r;
}

/* "password" carries a boolean and the password; "none" nothing; other methods are skipped. */
static int decode_userauth_request(struct cursor *c, struct apf_msg *m)
{
	struct apf_str secret;
	uint8_t change = 0;
	int r = get_str(c, &m->userauth.user);

	if (r == 0)
		r = get_str(c, &m->userauth.service);
	if (r == 0)
		r = get_str(c, &m->userauth.method);
	if (r < 0)
		return r;
	if (str_is(m->userauth.method, "password")) {
		r = cur_u8(c, &change);
		if (r == 0)
			r = get_str(c, &secret);
		return r;
	}
	if (str_is(m->userauth.method, "none"))
		return 0;
	return cur_skip(c, c->left);
}

static int decode_userauth_failure(struct cursor *c, struct apf_msg *m)
{
	uint8_t partial = 0;
	int r = get_str(c, &m->userauth.method);

	if (r == 0)
		r = cur_u8(c, &partial);
	return r;
}

static int decode_global_request(struct cursor *c, struct apf_msg *m)
{
	uint8_t want = 0;
	int r = get_str(c, &m->global.name);

	if (r == 0)
		r = cur_u8(c, &want);
	if (r < 0)
		return r;
	m->global.want_reply = want != 0;
	if (!str_is(m->global.name, APF_REQUEST_TCPIP_FORWARD) &&
	    !str_is(m->global.name, APF_REQUEST_CANCEL_TCPIP_FORWARD))
		return cur_skip(c, c->left); /* each request has its own layout; answered FAILURE */
	m->global.has_forward = true;
	r = get_str(c, &m->global.address);
	if (r == 0)
		r = get_port(c, &m->global.port);
	return r;
}

static int decode_request_success(struct cursor *c, struct apf_msg *m)
{
	if (c->left == 0)
		return 0;
	m->success.has_port = true;
	return get_port(c, &m->success.port);
}

static int decode_channel_open(struct cursor *c, struct apf_msg *m)
{
	int r = get_str(c, &m->open.channel_type);

	if (r == 0)
		r = cur_u32be(c, &m->open.sender);
	if (r == 0)
		r = cur_u32be(c, &m->open.window);
	if (r == 0)
		r = cur_u32be(c, &m->open.max_packet);
	if (r < 0)
		return r;
	if (!str_is(m->open.channel_type, APF_CHANNEL_TYPE_FORWARDED) &&
	    !str_is(m->open.channel_type, APF_CHANNEL_TYPE_DIRECT))
		return cur_skip(c, c->left); /* refused as an unknown channel type */
	m->open.has_endpoints = true;
	r = get_str(c, &m->open.connected_address);
	if (r == 0)
		r = get_port(c, &m->open.connected_port);
	if (r == 0)
		r = get_str(c, &m->open.originator_address);
	if (r == 0)
		r = get_port(c, &m->open.originator_port);
	return r;
}

static int decode_confirmation(struct cursor *c, struct apf_msg *m)
{
	int r = cur_u32be(c, &m->confirm.recipient);

	if (r == 0)
		r = cur_u32be(c, &m->confirm.sender);
	if (r == 0)
		r = cur_u32be(c, &m->confirm.window);
	if (r == 0)
		r = cur_u32be(c, &m->confirm.reserved);
	return r;
}

static int decode_open_failure(struct cursor *c, struct apf_msg *m)
{
	int r = cur_u32be(c, &m->failure.recipient);

	if (r == 0)
		r = cur_u32be(c, &m->failure.reason);
	if (r == 0)
		r = cur_skip(c, 8); /* two reserved u32 */
	return r;
}

static int decode_window_adjust(struct cursor *c, struct apf_msg *m)
{
	int r = cur_u32be(c, &m->adjust.recipient);

	if (r == 0)
		r = cur_u32be(c, &m->adjust.bytes);
	return r;
}

static int decode_channel_data(struct cursor *c, struct apf_msg *m)
{
	int r = cur_u32be(c, &m->data.recipient);

	if (r == 0)
		r = cur_string_be(c, &m->data.bytes, &m->data.len);
	return r;
}

static int decode_protocol_version(struct cursor *c, struct apf_msg *m)
{
	int r = cur_u32be(c, &m->version.major);

	if (r == 0)
		r = cur_u32be(c, &m->version.minor);
	if (r == 0)
		r = cur_u32be(c, &m->version.trigger);
	if (r == 0)
		r = cur_bytes(c, m->version.uuid, sizeof(m->version.uuid));
	if (r == 0)
		r = cur_skip(c, 64); /* reserved */
	return r;
}

static int decode_body(struct cursor *c, struct apf_msg *m)
{
	switch (m->type) {
	case APF_DISCONNECT:
		return decode_disconnect(c, m);
	case APF_SERVICE_REQUEST:
	case APF_SERVICE_ACCEPT:
		return get_str(c, &m->service);
	case APF_USERAUTH_REQUEST:
		return decode_userauth_request(c, m);
	case APF_USERAUTH_FAILURE:
		return decode_userauth_failure(c, m);
	case APF_USERAUTH_SUCCESS:
	case APF_REQUEST_FAILURE:
		return 0;
	case APF_GLOBAL_REQUEST:
		return decode_global_request(c, m);
	case APF_REQUEST_SUCCESS:
		return decode_request_success(c, m);
	case APF_CHANNEL_OPEN:
		return decode_channel_open(c, m);
	case APF_CHANNEL_OPEN_CONFIRMATION:
		return decode_confirmation(c, m);
	case APF_CHANNEL_OPEN_FAILURE:
		return decode_open_failure(c, m);
	case APF_CHANNEL_WINDOW_ADJUST:
		return decode_window_adjust(c, m);
	case APF_CHANNEL_DATA:
		return decode_channel_data(c, m);
	case APF_CHANNEL_CLOSE:
		return cur_u32be(c, &m->close.recipient);
	case APF_PROTOCOL_VERSION:
		return decode_protocol_version(c, m);
	default:
		return MEI_E_PROTOCOL;
	}
}

int apf_decode(const uint8_t *buf, size_t len, struct apf_msg *out)
{
	struct cursor c = cursor_init(buf, len);
	int r;

	if (!out)
		return MEI_E_PROTOCOL;
	memset(out, 0, sizeof(*out));
	if (!buf)
		return MEI_E_PROTOCOL;
	r = cur_u8(&c, &out->type);
	if (r == 0)
		r = decode_body(&c, out);
	if (r == 0)
		r = cur_end(&c);
	return r;
}

/* ---- encoding ---- */

static size_t finish(const struct wbuf *w)
{
	return wbuf_ok(w) ? w->len : 0;
}

static void put_cstr(struct wbuf *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n > UINT32_MAX) {
		w->overflow = true;
		return;
	}
	put_string_be(w, s, (uint32_t)n);
}

size_t apf_encode_protocol_version(uint8_t *out, size_t cap, uint32_t major, uint32_t minor,
                                   uint32_t trigger, const uint8_t *uuid)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_PROTOCOL_VERSION);
	put_u32be(&w, major);
	put_u32be(&w, minor);
	put_u32be(&w, trigger);
	if (uuid)
		put_bytes(&w, uuid, 16);
	else
		put_zeros(&w, 16);
	put_zeros(&w, 64);
	return finish(&w);
}

size_t apf_encode_disconnect(uint8_t *out, size_t cap, uint32_t reason)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_DISCONNECT);
	put_u32be(&w, reason);
	put_zeros(&w, 2);
	return finish(&w);
}

size_t apf_encode_service(uint8_t *out, size_t cap, uint8_t type, const char *name)
{
	struct wbuf w = wbuf_init(out, cap);

	if (type != APF_SERVICE_REQUEST && type != APF_SERVICE_ACCEPT)
		return 0;
	put_u8(&w, type);
	put_cstr(&w, name);
	return finish(&w);
}

size_t apf_encode_bare(uint8_t *out, size_t cap, uint8_t type)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, type);
	return finish(&w);
}

size_t apf_encode_global_request(uint8_t *out, size_t cap, const char *name, bool want_reply,
                                 const char *address, uint32_t port)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_GLOBAL_REQUEST);
	put_cstr(&w, name);
	put_u8(&w, want_reply ? 1 : 0);
	put_cstr(&w, address);
	put_u32be(&w, port);
	return finish(&w);
}

size_t apf_encode_request_success_port(uint8_t *out, size_t cap, uint32_t port)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_REQUEST_SUCCESS);
	put_u32be(&w, port);
	return finish(&w);
}

size_t apf_encode_channel_open(uint8_t *out, size_t cap, const char *channel_type, uint32_t sender,
                               uint32_t window, const char *connected_address,
                               uint32_t connected_port, const char *originator_address,
                               uint32_t originator_port)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_CHANNEL_OPEN);
	put_cstr(&w, channel_type);
	put_u32be(&w, sender);
	put_u32be(&w, window);
	put_u32be(&w, APF_MAX_PACKET_UNLIMITED);
	put_cstr(&w, connected_address);
	put_u32be(&w, connected_port);
	put_cstr(&w, originator_address);
	put_u32be(&w, originator_port);
	return finish(&w);
}

size_t apf_encode_open_confirmation(uint8_t *out, size_t cap, uint32_t recipient, uint32_t sender,
                                    uint32_t window, uint32_t reserved)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_CHANNEL_OPEN_CONFIRMATION);
	put_u32be(&w, recipient);
	put_u32be(&w, sender);
	put_u32be(&w, window);
	put_u32be(&w, reserved);
	return finish(&w);
}

size_t apf_encode_open_failure(uint8_t *out, size_t cap, uint32_t recipient, uint32_t reason)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_CHANNEL_OPEN_FAILURE);
	put_u32be(&w, recipient);
	put_u32be(&w, reason);
	put_zeros(&w, 8);
	return finish(&w);
}

size_t apf_encode_window_adjust(uint8_t *out, size_t cap, uint32_t recipient, uint32_t bytes)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_CHANNEL_WINDOW_ADJUST);
	put_u32be(&w, recipient);
	put_u32be(&w, bytes);
	return finish(&w);
}

size_t apf_encode_channel_data(uint8_t *out, size_t cap, uint32_t recipient, const void *bytes,
                               uint32_t len)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_CHANNEL_DATA);
	put_u32be(&w, recipient);
	put_string_be(&w, bytes, len);
	return finish(&w);
}

size_t apf_encode_channel_close(uint8_t *out, size_t cap, uint32_t recipient)
{
	struct wbuf w = wbuf_init(out, cap);

	put_u8(&w, APF_CHANNEL_CLOSE);
	put_u32be(&w, recipient);
	return finish(&w);
}

/* ---- the session ---- */

#define ERR_MAX         256
#define FORWARD_MAX     16
#define LOCAL_ADDRESS   "::1"
#define ORIGINATOR_PORT 123u /* as go-wsman-messages' ChannelOpen sends */

/* Pump outcomes besides 0 and the negative mei_err codes. */
#define PUMP_CONTINUE 1
#define SKIP          1 /* decode_from_amt(): a message of a type this side does not know */

enum channel_state {
	CHANNEL_OPEN,       /* bytes flow both ways */
	CHANNEL_CLOSE_SENT, /* the local side closed; waiting for AMT's CHANNEL_CLOSE */
	CHANNEL_AMT_CLOSED, /* AMT closed (and was answered); handing the local side what is left */
};

struct channel {
	uint32_t id;   /* ours: AMT's messages carry it as recipient */
	uint32_t peer; /* AMT's: ours carry it as recipient */
	uint16_t port;
	int sock; /* the accepted local connection (used with MSG_DONTWAIT) */
	enum channel_state state;
	uint32_t window;      /* what we offered */
	uint32_t peer_window; /* bytes we may still send */
	uint32_t rx_left;     /* bytes AMT may still send */
	uint32_t rx_credit;   /* handed to the local side, not yet given back to AMT */
	uint8_t *pending;     /* from AMT, not yet taken by the local side (at most window) */
	size_t pending_off, pending_len;
	int64_t deadline; /* when the current wait on AMT gives up; 0: none */
};

struct apf_session {
	struct mei_dev *dev;
	int recv_ms;
	uint32_t window;
	uint8_t *rbuf, *sbuf, *dbuf; /* receive, send, socket read: max_msg_length each */
	size_t buf_cap;
	uint32_t next_channel;
	unsigned handshakes;
	bool dead; /* the LME session ended: the next channel reconnects first */

	bool version_seen;
	bool pfwd_accepted;

	/* forwarded[], err, refusal, handshakes, bridge counters: written by the bridge thread */
	pthread_mutex_t lock;
	uint16_t forwarded[FORWARD_MAX];
	unsigned forwarded_count;
	uint32_t refusal;
	char err[ERR_MAX];
	struct apf_bridge_status status;

	/* the bridge; while its thread runs, it alone touches dev, the buffers, ch and dead */
	int wake_fd;   /* eventfd: apf_bridge_stop */
	int listen_fd; /* -1 when no bridge */
	uint16_t bridge_port;
	char bridge_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t bridge;
	bool bridge_running; /* a bridge thread exists and is not joined yet */
	bool stopping;       /* the thread saw the stop while a channel was up */
	bool aborted;        /* ... and the channel was cut short by it */
	struct channel ch;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static void set_err(struct apf_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(struct apf_session *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	va_start(ap, fmt);
	(void)vsnprintf(s->err, sizeof(s->err), fmt, ap); /* a cut message is still the error */
	va_end(ap);
	pthread_mutex_unlock(&s->lock);
}

static void clear_err(struct apf_session *s)
{
	pthread_mutex_lock(&s->lock);
	s->err[0] = '\0';
	pthread_mutex_unlock(&s->lock);
}

/* ---- forwarded ports ---- */

static bool port_forwarded_locked(const struct apf_session *s, uint16_t port)
{
	for (unsigned i = 0; i < s->forwarded_count; i++)
		if (s->forwarded[i] == port)
			return true;
	return false;
}

static void forward_add(struct apf_session *s, uint16_t port)
{
	pthread_mutex_lock(&s->lock);
	if (!port_forwarded_locked(s, port) && s->forwarded_count < FORWARD_MAX)
		s->forwarded[s->forwarded_count++] = port;
	pthread_mutex_unlock(&s->lock);
}

static void forward_remove(struct apf_session *s, uint16_t port)
{
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->forwarded_count; i++) {
		if (s->forwarded[i] == port) {
			s->forwarded[i] = s->forwarded[--s->forwarded_count];
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

static void forward_clear(struct apf_session *s)
{
	pthread_mutex_lock(&s->lock);
	s->forwarded_count = 0;
	pthread_mutex_unlock(&s->lock);
}

static bool wsman_forwarded(struct apf_session *s)
{
	bool yes;

	pthread_mutex_lock(&s->lock);
	yes = port_forwarded_locked(s, APF_PORT_HTTP) || port_forwarded_locked(s, APF_PORT_HTTPS);
	pthread_mutex_unlock(&s->lock);
	return yes;
}

/* ---- one message ---- */

/* A built message (LEN 0: it did not fit in max_msg_length) to AMT. */
static int send_built(struct apf_session *s, size_t len)
{
	if (len == 0)
		return MEI_E_TOO_BIG;
	return mei_send(s->dev, s->sbuf, len);
}

static void send_disconnect(struct apf_session *s, uint32_t reason)
{
	(void)send_built(s, apf_encode_disconnect(s->sbuf, s->buf_cap, reason));
}

/* The next non-empty message from AMT into rbuf, before DEADLINE. */
static int recv_from_amt(struct apf_session *s, int64_t deadline, size_t *len)
{
	for (;;) {
		int r = mei_recv(s->dev, s->rbuf, s->buf_cap, len, ms_left(deadline));

		if (r != 0 || *len > 0)
			return r;
	}
}

/*
 * Decode what recv_from_amt read. A type this side does not know is skipped (LMS does the same);
 * a malformed known one ends the session with DISCONNECT (protocol error).
 */
static int decode_from_amt(struct apf_session *s, size_t len, struct apf_msg *m)
{
	int r = apf_decode(s->rbuf, len, m);

	if (r == 0)
		return 0;
	if (!apf_message_known(m->type))
		return SKIP;
	set_err(s, "malformed APF %s from AMT (%zu bytes)", apf_message_name(m->type), len);
	send_disconnect(s, APF_DISCONNECT_PROTOCOL_ERROR);
	s->dead = true;
	return MEI_E_PROTOCOL;
}

/* ---- what AMT asks of the host, at any time ---- */

static int send_version(struct apf_session *s)
{
	return send_built(s, apf_encode_protocol_version(s->sbuf, s->buf_cap, 1, 0,
	                                                 APF_TRIGGER_LME_REQUEST, NULL));
}

static int on_version(struct apf_session *s, const struct apf_msg *m)
{
	if (m->version.major != 1) {
		set_err(s, "AMT speaks APF %u.%u; only 1.x is supported", m->version.major,
		        m->version.minor);
		send_disconnect(s, APF_DISCONNECT_PROTOCOL_VERSION_NOT_SUPPORTED);
		s->dead = true;
		return MEI_E_PROTOCOL;
	}
	/* Ours went out first; a repeated version from AMT needs no answer. */
	s->version_seen = true;
	return 0;
}

static int on_service_request(struct apf_session *s, const struct apf_msg *m)
{
	bool pfwd = str_is(m->service, APF_SERVICE_PFWD);

	if (!pfwd && !str_is(m->service, APF_SERVICE_AUTH)) {
		set_err(s, "AMT asked for an unknown APF service (%u bytes)", m->service.len);
		send_disconnect(s, APF_DISCONNECT_SERVICE_NOT_AVAILABLE);
		s->dead = true;
		return MEI_E_PROTOCOL;
	}
	if (pfwd)
		s->pfwd_accepted = true;
	return send_built(s, apf_encode_service(s->sbuf, s->buf_cap, APF_SERVICE_ACCEPT,
	                                        pfwd ? APF_SERVICE_PFWD : APF_SERVICE_AUTH));
}

static int on_global_request(struct apf_session *s, const struct apf_msg *m)
{
	size_t len;

	if (m->global.has_forward && str_is(m->global.name, APF_REQUEST_TCPIP_FORWARD)) {
		forward_add(s, (uint16_t)m->global.port);
		len = apf_encode_request_success_port(s->sbuf, s->buf_cap, m->global.port);
	} else if (m->global.has_forward) {
		forward_remove(s, (uint16_t)m->global.port);
		len = apf_encode_bare(s->sbuf, s->buf_cap, APF_REQUEST_SUCCESS);
	} else {
		len = apf_encode_bare(s->sbuf, s->buf_cap, APF_REQUEST_FAILURE);
	}
	return m->global.want_reply ? send_built(s, len) : 0;
}

/*
 * Messages that are not about the host's channel: AMT's side of the handshake, later global
 * requests, DISCONNECT, channels AMT would open towards the host (refused), and leftovers for
 * channels that are gone (ignored).
 */
static int handle_control(struct apf_session *s, const struct apf_msg *m)
{
	switch (m->type) {
	case APF_PROTOCOL_VERSION:
		return on_version(s, m);
	case APF_SERVICE_REQUEST:
		return on_service_request(s, m);
	case APF_USERAUTH_REQUEST:
		return send_built(s, apf_encode_bare(s->sbuf, s->buf_cap, APF_USERAUTH_SUCCESS));
	case APF_GLOBAL_REQUEST:
		return on_global_request(s, m);
	case APF_CHANNEL_OPEN:
		return send_built(s, apf_encode_open_failure(s->sbuf, s->buf_cap, m->open.sender,
		                                             APF_OPEN_FAILURE_PROHIBITED));
	case APF_CHANNEL_OPEN_CONFIRMATION:
		/* an open we gave up on: hand the slot back */
		return send_built(s,
		                  apf_encode_channel_close(s->sbuf, s->buf_cap, m->confirm.sender));
	case APF_DISCONNECT:
		set_err(s, "AMT ended the APF session: DISCONNECT, %s (reason %u)",
		        apf_disconnect_name(m->disconnect.reason), m->disconnect.reason);
		s->dead = true;
		return MEI_E_RESET;
	default:
		return 0;
	}
}

/*
 * Read and handle what AMT has already queued, without waiting. The session ending (a reset or
 * DISCONNECT) only marks it dead: whoever needs it next starts over.
 */
static int drain_now(struct apf_session *s)
{
	for (;;) {
		struct apf_msg m;
		size_t len;
		int r = recv_from_amt(s, now_ms(), &len);

		if (r == 0)
			r = decode_from_amt(s, len, &m);
		if (r == SKIP)
			continue;
		if (r == 0)
			r = handle_control(s, &m);
		if (r == MEI_E_TIMEOUT)
			return 0;
		if (r == MEI_E_RESET) {
			s->dead = true;
			return 0;
		}
		if (r != 0)
			return r;
	}
}

/* ---- handshake ---- */

static int fit_buffers(struct apf_session *s)
{
	size_t cap = mei_max_msg_length(s->dev);
	uint8_t *b[3];

	if (cap <= APF_DATA_HEADER_LEN) {
		set_err(s, "the LME client's max_msg_length (%zu) leaves no room for data", cap);
		return MEI_E_PROTOCOL;
	}
	if (cap == s->buf_cap)
		return 0;
	b[0] = realloc(s->rbuf, cap);
	if (b[0])
		s->rbuf = b[0];
	b[1] = realloc(s->sbuf, cap);
	if (b[1])
		s->sbuf = b[1];
	b[2] = realloc(s->dbuf, cap);
	if (b[2])
		s->dbuf = b[2];
	if (!b[0] || !b[1] || !b[2])
		return MEI_E_NOMEM;
	s->buf_cap = cap;
	return 0;
}

static bool handshake_done(struct apf_session *s)
{
	return s->version_seen && s->pfwd_accepted && wsman_forwarded(s);
}

static void explain_handshake_failure(struct apf_session *s, int r)
{
	if (r == MEI_E_TIMEOUT)
		set_err(s,
		        "no APF handshake from AMT within %d ms (version %s, port forwarding "
		        "service %s, WS-Man port %s)",
		        s->recv_ms, s->version_seen ? "agreed" : "not received",
		        s->pfwd_accepted ? "accepted" : "not requested",
		        wsman_forwarded(s) ? "forwarded" : "not forwarded");
	else if (r == MEI_E_RESET && !s->err[0])
		set_err(s, "the LME connection was reset during the APF handshake");
	else if (r == MEI_E_TOO_BIG)
		set_err(s, "the LME client's max_msg_length (%zu) is too small for APF",
		        s->buf_cap);
	else if (!s->err[0])
		set_err(s, "APF handshake failed: %s", mei_strerror(r));
}

static int handshake(struct apf_session *s)
{
	int64_t deadline = now_ms() + s->recv_ms;
	int r = fit_buffers(s);

	s->version_seen = false;
	s->pfwd_accepted = false;
	s->dead = false;
	clear_err(s);
	forward_clear(s);
	if (r == 0)
		r = send_version(s);
	while (r == 0 && !handshake_done(s)) {
		struct apf_msg m;
		size_t len;

		r = recv_from_amt(s, deadline, &len);
		if (r == 0)
			r = decode_from_amt(s, len, &m);
		if (r == SKIP)
			r = 0;
		else if (r == 0)
			r = handle_control(s, &m);
	}
	/* What AMT queued behind the WS-Man port (the redirection port) is answered now. */
	if (r == 0)
		r = drain_now(s);
	if (r < 0) {
		s->dead = true;
		explain_handshake_failure(s, r);
		return r;
	}
	pthread_mutex_lock(&s->lock);
	s->handshakes++;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int restart(struct apf_session *s)
{
	int r = mei_reconnect(s->dev);

	if (r < 0) {
		set_err(s, "cannot connect to the LME client again: %s", mei_strerror(r));
		s->dead = true;
		return r;
	}
	return handshake(s);
}

/* ---- public: session ---- */

int apf_open_err(const char *device, const struct mei_opts *o, struct apf_session **out, char *err,
                 size_t errlen)
{
	struct mei_opts defaults;
	struct apf_session *s;
	int r;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!out)
		return MEI_E_IO;
	*out = NULL;
	if (!o) {
		mei_opts_default(&defaults);
		o = &defaults;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return MEI_E_NOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->listen_fd = -1;
	if (o->recv_ms > 0) {
		s->recv_ms = o->recv_ms;
	} else {
		mei_opts_default(&defaults);
		s->recv_ms = defaults.recv_ms;
	}
	s->window = APF_DEFAULT_WINDOW;
	s->next_channel = 1;
	s->ch.sock = -1;
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		apf_close(s);
		return MEI_E_IO;
	}
	r = mei_open(device, MEI_GUID_LME, o, &s->dev);
	if (r < 0)
		set_err(s, "cannot connect to the LME client: %s", mei_strerror(r));
	else
		r = handshake(s);
	if (r < 0) {
		if (err && errlen > 0)
			snprintf(err, errlen, "%s", s->err);
		s->dead = true; /* nothing to say DISCONNECT to */
		apf_close(s);
		return r;
	}
	*out = s;
	return 0;
}

int apf_open(const char *device, const struct mei_opts *o, struct apf_session **out)
{
	return apf_open_err(device, o, out, NULL, 0);
}

bool apf_tls_enforced(const struct apf_session *s)
{
	struct apf_session *m = (struct apf_session *)s; /* the lock is not part of the value */
	bool tls;

	if (!s)
		return false;
	pthread_mutex_lock(&m->lock);
	tls = port_forwarded_locked(s, APF_PORT_HTTPS) && !port_forwarded_locked(s, APF_PORT_HTTP);
	pthread_mutex_unlock(&m->lock);
	return tls;
}

uint16_t apf_wsman_port(const struct apf_session *s)
{
	struct apf_session *m = (struct apf_session *)s;
	uint16_t port = 0;

	if (!s)
		return 0;
	pthread_mutex_lock(&m->lock);
	if (port_forwarded_locked(s, APF_PORT_HTTP))
		port = APF_PORT_HTTP;
	else if (port_forwarded_locked(s, APF_PORT_HTTPS))
		port = APF_PORT_HTTPS;
	pthread_mutex_unlock(&m->lock);
	return port;
}

unsigned apf_handshake_count(const struct apf_session *s)
{
	struct apf_session *m = (struct apf_session *)s;
	unsigned n;

	if (!s)
		return 0;
	pthread_mutex_lock(&m->lock);
	n = s->handshakes;
	pthread_mutex_unlock(&m->lock);
	return n;
}

struct mei_dev *apf_device(struct apf_session *s)
{
	return s ? s->dev : NULL;
}

void apf_set_window(struct apf_session *s, uint32_t window)
{
	if (s && window > 0)
		s->window = window;
}

const char *apf_last_error(const struct apf_session *s)
{
	return s ? s->err : "";
}

uint32_t apf_last_refusal(const struct apf_session *s)
{
	struct apf_session *m = (struct apf_session *)s;
	uint32_t reason;

	if (!s)
		return 0;
	pthread_mutex_lock(&m->lock);
	reason = s->refusal;
	pthread_mutex_unlock(&m->lock);
	return reason;
}

/* ---- the pump: one channel's bytes, both ways ---- */

/*
 * A send failed because the firmware went away; if it said DISCONNECT before it went, that
 * message may still be waiting, and it tells why.
 */
static bool disconnect_waiting(struct apf_session *s)
{
	for (;;) {
		struct apf_msg m;
		size_t len;

		if (recv_from_amt(s, now_ms(), &len) != 0 || apf_decode(s->rbuf, len, &m) != 0)
			return false;
		if (m.type == APF_DISCONNECT) {
			set_err(s,
			        "AMT ended the APF session during the channel to port %u: "
			        "DISCONNECT, %s (reason %u)",
			        s->ch.port, apf_disconnect_name(m.disconnect.reason),
			        m.disconnect.reason);
			return true;
		}
	}
}

/*
 * The LME connection failed (R) while the channel was up. A reset after our CHANNEL_CLOSE only
 * means the firmware ended the session with the channel (rpc-go sees that): nothing was lost.
 */
static int channel_lost(struct apf_session *s, int r)
{
	struct channel *ch = &s->ch;

	if (r == MEI_E_RESET) {
		s->dead = true;
		if (ch->state == CHANNEL_CLOSE_SENT)
			return 0;
		if (ch->state == CHANNEL_AMT_CLOSED)
			return ch->pending_len > 0 ? PUMP_CONTINUE : 0;
		if (!disconnect_waiting(s))
			set_err(s, "the LME connection was reset during the channel to port %u",
			        ch->port);
		return r;
	}
	set_err(s, "the channel to port %u failed: %s", ch->port, mei_strerror(r));
	return r;
}

/* Give AMT back what the local side has taken, once that is worth a message. */
static int credit_amt(struct apf_session *s)
{
	struct channel *ch = &s->ch;
	int r;

	if (ch->state == CHANNEL_AMT_CLOSED || ch->rx_credit == 0 || ch->rx_credit < ch->window / 2)
		return 0;
	r = send_built(s, apf_encode_window_adjust(s->sbuf, s->buf_cap, ch->peer, ch->rx_credit));
	if (r == 0) {
		ch->rx_left += ch->rx_credit;
		ch->rx_credit = 0;
	}
	return r;
}

/* The local side closed its end (or broke): say CHANNEL_CLOSE and wait for AMT's. */
static int local_closed(struct apf_session *s)
{
	struct channel *ch = &s->ch;
	int r;

	if (ch->state == CHANNEL_AMT_CLOSED)
		return 0;
	if (ch->state == CHANNEL_CLOSE_SENT)
		return PUMP_CONTINUE;
	r = send_built(s, apf_encode_channel_close(s->sbuf, s->buf_cap, ch->peer));
	ch->state = CHANNEL_CLOSE_SENT;
	ch->deadline = now_ms() + s->recv_ms;
	return r < 0 ? channel_lost(s, r) : PUMP_CONTINUE;
}

static int on_amt_data(struct apf_session *s, const struct apf_msg *m)
{
	struct channel *ch = &s->ch;

	if (m->data.len > ch->rx_left) {
		set_err(s, "AMT sent %u bytes on the channel to port %u with %u left in its window",
		        m->data.len, ch->port, ch->rx_left);
		send_disconnect(s, APF_DISCONNECT_PROTOCOL_ERROR);
		s->dead = true;
		return MEI_E_PROTOCOL;
	}
	ch->rx_left -= m->data.len;
	if (ch->state == CHANNEL_AMT_CLOSED || m->data.len == 0)
		return PUMP_CONTINUE;
	/* pending + rx_left + rx_credit == window, so the bytes always fit once moved to the front
	 */
	if (ch->pending_off + ch->pending_len + m->data.len > ch->window) {
		memmove(ch->pending, ch->pending + ch->pending_off, ch->pending_len);
		ch->pending_off = 0;
	}
	memcpy(ch->pending + ch->pending_off + ch->pending_len, m->data.bytes, m->data.len);
	ch->pending_len += m->data.len;
	return PUMP_CONTINUE;
}

static int on_amt_close(struct apf_session *s)
{
	struct channel *ch = &s->ch;
	int r;

	if (ch->state == CHANNEL_CLOSE_SENT)
		return 0;
	r = send_built(s, apf_encode_channel_close(s->sbuf, s->buf_cap, ch->peer));
	if (r == MEI_E_RESET)
		s->dead = true; /* the firmware ended the session with the channel */
	ch->state = CHANNEL_AMT_CLOSED;
	ch->deadline = now_ms() + s->recv_ms;
	return ch->pending_len > 0 ? PUMP_CONTINUE : 0;
}

static int from_amt(struct apf_session *s)
{
	struct channel *ch = &s->ch;
	struct apf_msg m;
	size_t len;
	int r = recv_from_amt(s, now_ms(), &len);

	if (r == MEI_E_TIMEOUT)
		return PUMP_CONTINUE;
	if (r < 0)
		return channel_lost(s, r);
	r = decode_from_amt(s, len, &m);
	if (r == SKIP)
		return PUMP_CONTINUE;
	if (r < 0)
		return r;
	switch (m.type) {
	case APF_CHANNEL_DATA:
		if (m.data.recipient == ch->id)
			return on_amt_data(s, &m);
		break;
	case APF_CHANNEL_WINDOW_ADJUST:
		if (m.adjust.recipient != ch->id)
			break;
		ch->peer_window = m.adjust.bytes > UINT32_MAX - ch->peer_window
		                      ? UINT32_MAX
		                      : ch->peer_window + m.adjust.bytes;
		if (ch->state == CHANNEL_OPEN && ch->peer_window > 0)
			ch->deadline = 0;
		return PUMP_CONTINUE;
	case APF_CHANNEL_CLOSE:
		if (m.close.recipient == ch->id)
			return on_amt_close(s);
		break;
	case APF_DISCONNECT:
		s->dead = true;
		if (ch->state == CHANNEL_CLOSE_SENT)
			return 0;
		set_err(s,
		        "AMT ended the APF session during the channel to port %u: DISCONNECT, "
		        "%s (reason %u)",
		        ch->port, apf_disconnect_name(m.disconnect.reason), m.disconnect.reason);
		return MEI_E_RESET;
	default:
		break;
	}
	r = handle_control(s, &m);
	return r < 0 ? r : PUMP_CONTINUE;
}

/* AMT's bytes to the local side, as far as it takes them. */
static int to_local(struct apf_session *s)
{
	struct channel *ch = &s->ch;
	ssize_t n = send(ch->sock, ch->pending + ch->pending_off, ch->pending_len,
	                 MSG_NOSIGNAL | MSG_DONTWAIT);
	int r;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return PUMP_CONTINUE;
	if (n <= 0) { /* the local side is gone: what it did not take is dropped */
		ch->pending_off = ch->pending_len = 0;
		return local_closed(s);
	}
	ch->pending_off += (size_t)n;
	ch->pending_len -= (size_t)n;
	if (ch->pending_len == 0)
		ch->pending_off = 0;
	ch->rx_credit += (uint32_t)n;
	if (ch->state == CHANNEL_AMT_CLOSED)
		return ch->pending_len > 0 ? PUMP_CONTINUE : 0;
	r = credit_amt(s);
	return r < 0 ? channel_lost(s, r) : PUMP_CONTINUE;
}

/* The local side's bytes to AMT: never beyond AMT's window nor max_msg_length. */
static int from_local(struct apf_session *s)
{
	struct channel *ch = &s->ch;
	uint32_t want = min_u32(ch->peer_window, (uint32_t)(s->buf_cap - APF_DATA_HEADER_LEN));
	ssize_t n = recv(ch->sock, s->dbuf, want, MSG_DONTWAIT);
	int r;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return PUMP_CONTINUE;
	if (n <= 0)
		return local_closed(s);
	r = send_built(
	    s, apf_encode_channel_data(s->sbuf, s->buf_cap, ch->peer, s->dbuf, (uint32_t)n));
	if (r < 0)
		return channel_lost(s, r);
	ch->peer_window -= (uint32_t)n;
	if (ch->peer_window == 0)
		ch->deadline = now_ms() + s->recv_ms;
	return PUMP_CONTINUE;
}

static int on_timeout(struct apf_session *s)
{
	struct channel *ch = &s->ch;
	int unread = 0;

	switch (ch->state) {
	case CHANNEL_OPEN:
		/* Out of window: only a wait if the local side has something to send. */
		if (ioctl(ch->sock, FIONREAD, &unread) == 0 && unread == 0) {
			ch->deadline = now_ms() + s->recv_ms;
			return PUMP_CONTINUE;
		}
		set_err(s, "AMT gave the channel to port %u no window for %d ms", ch->port,
		        s->recv_ms);
		(void)send_built(s, apf_encode_channel_close(s->sbuf, s->buf_cap, ch->peer));
		s->dead = true; /* the next channel starts on a fresh session */
		return MEI_E_TIMEOUT;
	case CHANNEL_CLOSE_SENT:
		set_err(s, "AMT did not confirm closing the channel to port %u within %d ms",
		        ch->port, s->recv_ms);
		s->dead = true;
		return MEI_E_TIMEOUT;
	case CHANNEL_AMT_CLOSED:
	default:
		set_err(s,
		        "the local side did not take the last %zu bytes from port %u within %d ms",
		        ch->pending_len, ch->port, s->recv_ms);
		return MEI_E_TIMEOUT;
	}
}

/*
 * apf_bridge_stop while the channel is up: it ends as if the local side had closed (CHANNEL_CLOSE,
 * then AMT's, bounded by recv_ms), and the local side gets nothing more. A channel that was
 * already closing just finishes.
 */
static int stop_channel(struct apf_session *s)
{
	struct channel *ch = &s->ch;
	uint8_t b;

	s->stopping = true;
	if (ch->state == CHANNEL_CLOSE_SENT)
		return PUMP_CONTINUE;
	/* A client that has closed, with nothing left unread, is done: a clean close. */
	if (ch->state == CHANNEL_OPEN && recv(ch->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
		ch->pending_off = ch->pending_len = 0;
		return local_closed(s);
	}
	s->aborted = true;
	set_err(s, "the bridge was stopped while the channel to port %u was open", ch->port);
	if (ch->state == CHANNEL_AMT_CLOSED || s->dead)
		return MEI_E_IO;
	ch->pending_off = ch->pending_len = 0;
	return local_closed(s);
}

static short socket_events(const struct apf_session *s)
{
	const struct channel *ch = &s->ch;
	short ev = 0;

	if (s->stopping)
		return 0;
	if (ch->state == CHANNEL_OPEN && ch->peer_window > 0)
		ev |= POLLIN;
	if (ch->pending_len > 0)
		ev |= POLLOUT;
	return ev;
}

static int pump_run(struct apf_session *s)
{
	struct channel *ch = &s->ch;

	for (;;) {
		short ev = socket_events(s);
		struct pollfd p[3] = {
		    {.fd = s->stopping ? -1 : s->wake_fd, .events = POLLIN},
		    {.fd = s->dead ? -1 : mei_fd(s->dev), .events = POLLIN},
		    {.fd = ev ? ch->sock : -1, .events = ev},
		};
		int timeout = ch->deadline ? ms_left(ch->deadline) : -1;
		int n, r = PUMP_CONTINUE;

		if (timeout == 0) {
			r = on_timeout(s);
			if (r != PUMP_CONTINUE)
				return r;
			continue;
		}
		n = poll(p, 3, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_err(s, "poll: %s", strerror(errno));
			return MEI_E_IO;
		}
		if (p[0].revents) {
			r = stop_channel(s);
			if (r != PUMP_CONTINUE)
				return r;
			continue;
		}
		if (p[1].revents)
			r = from_amt(s);
		if (r == PUMP_CONTINUE && (p[2].revents & (POLLOUT | POLLERR | POLLHUP)) &&
		    ch->pending_len > 0)
			r = to_local(s);
		if (r == PUMP_CONTINUE && (p[2].revents & (POLLIN | POLLERR | POLLHUP)) &&
		    ch->state == CHANNEL_OPEN && ch->peer_window > 0)
			r = from_local(s);
		if (r != PUMP_CONTINUE)
			return r;
	}
}

/* ---- opening a channel ---- */

/* AMT's answer to our CHANNEL_OPEN for channel ID. */
static int await_open_answer(struct apf_session *s, uint32_t id, uint16_t port)
{
	int64_t deadline = now_ms() + s->recv_ms;

	for (;;) {
		struct apf_msg m;
		size_t len;
		int r = recv_from_amt(s, deadline, &len);

		if (r == MEI_E_TIMEOUT) {
			set_err(s, "AMT did not answer the channel open to port %u within %d ms",
			        port, s->recv_ms);
			s->dead = true; /* start over: some firmware ends the session silently */
		} else if (r == MEI_E_RESET) {
			if (!s->dead)
				set_err(s,
				        "the LME connection was reset while opening a channel to "
				        "port %u",
				        port);
			s->dead = true;
		}
		if (r == 0)
			r = decode_from_amt(s, len, &m);
		if (r == SKIP)
			continue;
		if (r != 0)
			return r;
		if (m.type == APF_CHANNEL_OPEN_CONFIRMATION && m.confirm.recipient == id) {
			s->ch.peer = m.confirm.sender;
			s->ch.peer_window = m.confirm.window;
			return 0;
		}
		if (m.type == APF_CHANNEL_OPEN_FAILURE && m.failure.recipient == id) {
			pthread_mutex_lock(&s->lock);
			s->refusal = m.failure.reason;
			pthread_mutex_unlock(&s->lock);
			set_err(s, "AMT refused a channel to port %u: %s (reason %u)", port,
			        apf_open_failure_name(m.failure.reason), m.failure.reason);
			return MEI_E_REFUSED;
		}
		r = handle_control(s, &m);
		if (r < 0)
			return r;
	}
}

static int open_channel(struct apf_session *s, uint16_t port)
{
	uint32_t id = s->next_channel++;
	int r;

	if (s->next_channel == 0)
		s->next_channel = 1;
	r = drain_now(s);
	if (r == 0 && s->dead)
		r = MEI_E_RESET;
	if (r == 0)
		r = send_built(s, apf_encode_channel_open(s->sbuf, s->buf_cap,
		                                          APF_CHANNEL_TYPE_FORWARDED, id, s->window,
		                                          LOCAL_ADDRESS, port, LOCAL_ADDRESS,
		                                          ORIGINATOR_PORT));
	if (r == MEI_E_RESET) {
		s->dead = true;
		set_err(s, "the LME session had ended before the channel to port %u", port);
	}
	if (r < 0)
		return r;
	s->ch.id = id;
	s->ch.port = port;
	return await_open_answer(s, id, port);
}

/*
 * A channel to PORT, the firmware's ended session started over first when needed: once when it
 * was found dead before, and once more when it turns out dead on the way (a reset, DISCONNECT,
 * or silence in answer to the open).
 */
static int open_channel_restarting(struct apf_session *s, uint16_t port)
{
	int r = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		r = 0;
		if (s->dead)
			r = restart(s);
		if (r == 0)
			r = open_channel(s, port);
		if (r == 0 || !s->dead)
			break;
	}
	return r;
}

/* Bytes both ways between CONN and the channel just opened, until either side closes it. */
static int run_channel(struct apf_session *s, int conn)
{
	struct channel *ch = &s->ch;
	int r;

	ch->sock = conn;
	ch->state = CHANNEL_OPEN;
	ch->window = s->window;
	ch->rx_left = s->window;
	ch->rx_credit = 0;
	ch->pending_off = ch->pending_len = 0;
	/* a channel confirmed with no window is already a wait on AMT */
	ch->deadline = ch->peer_window == 0 ? now_ms() + s->recv_ms : 0;
	ch->pending = malloc(ch->window);
	if (!ch->pending) {
		/* AMT holds a slot for the channel: give it back */
		(void)send_built(s, apf_encode_channel_close(s->sbuf, s->buf_cap, ch->peer));
		s->dead = true; /* its CHANNEL_CLOSE is not waited for: start over next time */
		set_err(s, "out of memory for the channel to port %u", ch->port);
		ch->sock = -1;
		return MEI_E_NOMEM;
	}
	r = pump_run(s);
	if (r == 0 && s->aborted)
		r = MEI_E_IO;
	free(ch->pending);
	ch->pending = NULL;
	ch->sock = -1;
	return r;
}

/* ---- the bridge: a Unix listener, one connection and one channel at a time ---- */

/*
 * Unread bytes in our end when it closes would turn the local side's end of file into
 * ECONNRESET (AF_UNIX does that), so what it sent that nobody will carry is read and dropped.
 */
static void discard_unread(int sock)
{
	uint8_t sink[512];

	while (recv(sock, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
}

static bool stop_requested(const struct apf_session *s)
{
	struct pollfd p = {.fd = s->wake_fd, .events = POLLIN};

	return poll(&p, 1, 0) > 0;
}

/* How the connection went, recorded before it is closed: its client reads it after EOF. */
static void record_result(struct apf_session *s, int r, bool confirmed)
{
	pthread_mutex_lock(&s->lock);
	if (confirmed)
		s->status.channels++;
	if (r == MEI_E_REFUSED) {
		s->status.refused++;
		s->status.last_refusal = s->refusal;
	} else if (r != 0) {
		s->status.failed++;
	}
	s->status.last_result = r;
	snprintf(s->status.last_error, sizeof(s->status.last_error), "%s", r != 0 ? s->err : "");
	s->status.completed++;
	pthread_mutex_unlock(&s->lock);
}

static void serve_connection(struct apf_session *s, int conn)
{
	bool confirmed = false;
	uint8_t b;
	int r;

	/* A client that gave up while queued costs AMT no channel. */
	if (recv(conn, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
		close(conn);
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->status.accepted++;
	s->status.last_result = 0;
	s->status.last_refusal = 0;
	s->status.last_error[0] = '\0';
	s->refusal = 0;
	s->err[0] = '\0';
	pthread_mutex_unlock(&s->lock);
	if (stop_requested(s)) {
		set_err(s, "the bridge was stopped before the channel to port %u was opened",
		        s->bridge_port);
		r = MEI_E_IO;
	} else {
		r = open_channel_restarting(s, s->bridge_port);
	}
	if (r == 0) {
		confirmed = true;
		r = run_channel(s, conn);
	}
	record_result(s, r, confirmed);
	discard_unread(conn);
	close(conn);
}

/* accept() failed for want of resources: say so, and let a stop through while waiting. */
static void accept_failed(struct apf_session *s, int e)
{
	struct pollfd p = {.fd = s->wake_fd, .events = POLLIN};

	set_err(s, "the bridge cannot accept a connection: %s", strerror(e));
	(void)poll(&p, 1, 100);
}

static void *bridge_main(void *arg)
{
	struct apf_session *s = arg;

	for (;;) {
		struct pollfd p[3] = {
		    {.fd = s->wake_fd, .events = POLLIN},
		    {.fd = s->listen_fd, .events = POLLIN},
		    /* between channels, what AMT says (global requests, DISCONNECT) is answered */
		    {.fd = s->dead ? -1 : mei_fd(s->dev), .events = POLLIN},
		};
		int n = poll(p, 3, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || p[0].revents)
			break;
		if (p[2].revents && drain_now(s) < 0)
			s->dead = true; /* the next connection starts over */
		if (p[1].revents) {
			int conn = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);

			if (conn >= 0)
				serve_connection(s, conn);
			else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
				accept_failed(s, errno);
		}
	}
	return NULL;
}

/* DIR must be a real directory of ours that nobody else can enter. */
static int check_private_dir(struct apf_session *s, const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) != 0) {
		set_err(s, "the bridge directory %.100s: %s", dir, strerror(errno));
		return MEI_E_IO;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		set_err(s,
		        "refusing the bridge directory %.100s: it must be a directory (not a link) "
		        "owned by uid %u with no group or other access",
		        dir, (unsigned)geteuid());
		return MEI_E_ACCESS;
	}
	return 0;
}

static int bridge_socket(struct apf_session *s, const char *dir, struct sockaddr_un *sa)
{
	static atomic_uint seq;
	struct stat st;
	size_t n;
	int fd;

	n = (size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/apf-%ld-%u.sock", dir,
	                     (long)getpid(), atomic_fetch_add(&seq, 1u));
	if (n >= sizeof(sa->sun_path)) {
		set_err(s, "the bridge socket's path under %.100s is too long for a Unix socket",
		        dir);
		return MEI_E_IO;
	}
	/* the directory is ours alone: a socket left there by an earlier run is ours too */
	if (lstat(sa->sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(sa->sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		set_err(s, "cannot make the bridge socket %.150s: %s", sa->sun_path,
		        strerror(errno));
		if (fd >= 0)
			close(fd);
		return MEI_E_IO;
	}
	if (chmod(sa->sun_path, 0600) != 0 || listen(fd, 8) != 0) {
		set_err(s, "cannot listen on the bridge socket %.150s: %s", sa->sun_path,
		        strerror(errno));
		close(fd);
		(void)unlink(sa->sun_path);
		return MEI_E_IO;
	}
	return fd;
}

int apf_bridge_listen(struct apf_session *s, uint16_t port, const char *dir, char *path_out,
                      size_t cap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if (path_out && cap > 0)
		path_out[0] = '\0';
	if (!s || !s->dev || !dir || !path_out || cap == 0 || port == 0)
		return MEI_E_IO;
	if (s->bridge_running) {
		set_err(s, "the APF session already bridges port %u at %.150s", s->bridge_port,
		        s->bridge_path);
		return MEI_E_BUSY;
	}
	clear_err(s);
	r = check_private_dir(s, dir);
	if (r < 0)
		return r;
	fd = bridge_socket(s, dir, &sa);
	if (fd < 0)
		return fd;
	if (strlen(sa.sun_path) >= cap) {
		set_err(s, "no room for the bridge socket's path (%zu bytes)", strlen(sa.sun_path));
		close(fd);
		(void)unlink(sa.sun_path);
		return MEI_E_IO;
	}
	s->listen_fd = fd;
	s->bridge_port = port;
	memcpy(s->bridge_path, sa.sun_path, sizeof(s->bridge_path));
	s->stopping = s->aborted = false;
	pthread_mutex_lock(&s->lock);
	memset(&s->status, 0, sizeof(s->status));
	s->status.listening = true;
	pthread_mutex_unlock(&s->lock);
	if (pthread_create(&s->bridge, NULL, bridge_main, s) != 0) {
		set_err(s, "cannot start the bridge thread");
		pthread_mutex_lock(&s->lock);
		s->status.listening = false;
		pthread_mutex_unlock(&s->lock);
		close(fd);
		s->listen_fd = -1;
		(void)unlink(s->bridge_path);
		return MEI_E_NOMEM;
	}
	s->bridge_running = true;
	snprintf(path_out, cap, "%s", s->bridge_path);
	return 0;
}

void apf_bridge_stop(struct apf_session *s)
{
	uint64_t v = 1;
	ssize_t n;

	if (!s || !s->bridge_running)
		return;
	/* no new client can find it; those already queued are reset when the listener goes */
	(void)unlink(s->bridge_path);
	n = write(s->wake_fd, &v, sizeof(v)); /* cannot fail on an eventfd */
	pthread_join(s->bridge, NULL);
	if (n == (ssize_t)sizeof(v))
		n = read(s->wake_fd, &v, sizeof(v)); /* drained: ready for the next bridge */
	(void)n;
	close(s->listen_fd);
	s->listen_fd = -1;
	s->bridge_running = false;
	s->stopping = s->aborted = false;
	pthread_mutex_lock(&s->lock);
	s->status.listening = false;
	pthread_mutex_unlock(&s->lock);
}

void apf_bridge_status(const struct apf_session *s, struct apf_bridge_status *out)
{
	struct apf_session *m = (struct apf_session *)s; /* the lock is not part of the value */

	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	pthread_mutex_lock(&m->lock);
	*out = s->status;
	pthread_mutex_unlock(&m->lock);
}

void apf_close(struct apf_session *s)
{
	if (!s)
		return;
	apf_bridge_stop(s);
	if (s->dev && !s->dead && s->sbuf)
		send_disconnect(s, APF_DISCONNECT_BY_APPLICATION);
	mei_close(s->dev);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	free(s->rbuf);
	free(s->sbuf);
	free(s->dbuf);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
