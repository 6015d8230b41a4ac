/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The firmware side of APF (see apf_fw.h). Messages are decoded and built with mei's APF codec,
 * the same one the host uses; the byte-exact vectors in mei/test_apf.c keep that codec honest.
 */
#include "apf_fw.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mei.h"

#define FORWARD_MAX     4
#define FIRST_CHANNEL   0x100u /* AMT's channel numbers; apart from the host's, to catch mix-ups */
#define FORWARD_ADDRESS "127.0.0.1"

enum fw_state {
	FW_WAIT_VERSION,        /* nothing agreed yet */
	FW_WAIT_SERVICE_ACCEPT, /* SERVICE_REQUEST pfwd sent */
	FW_FORWARDING,          /* tcpip-forward requests sent; channels may open */
	FW_ENDED,               /* DISCONNECT either way, or a fault: the session is over */
};

struct fw_channel {
	bool used;
	unsigned gen; /* bumped whenever the slot is taken or freed, for the pump's stale views */
	uint32_t id;  /* ours */
	uint32_t host_id;
	uint16_t port;
	int svc;            /* the service's socket, -1 once closed */
	bool close_sent;    /* we said CHANNEL_CLOSE; the slot stays until the host says it too */
	uint32_t tx_window; /* bytes we may still send the host */
	uint32_t rx_left;   /* bytes the host may still send us */
	uint32_t rx_credit; /* taken by the service, not yet given back */
	uint8_t *pending;   /* host bytes the service has not taken (at most the window) */
	size_t pending_off, pending_len;
};

struct apf_fw {
	struct apf_fw_config cfg;
	struct apf_fw_ops ops;
	pthread_mutex_t lock;
	pthread_t pump;
	bool pump_started;
	bool stopping;
	int wake; /* eventfd: the channels changed, rebuild the poll set */

	enum fw_state state;
	bool version_sent;
	uint16_t wsman_port, redir_port;
	uint16_t
	    asked[FORWARD_MAX]; /* tcpip-forward requests awaiting the host's reply, in order */
	unsigned asked_count;
	uint16_t forwarded[FORWARD_MAX];
	unsigned forwarded_count;
	unsigned data_frames;
	uint32_t next_id;

	struct fw_channel *ch;
	uint8_t *out;  /* one message being built */
	uint8_t *rbuf; /* one read from a service */
	struct apf_fw_stats st;
};

/* ---- sending ---- */

static int send_out(struct apf_fw *fw, size_t len)
{
	if (len == 0)
		return MEI_E_TOO_BIG;
	return fw->ops.send_to_host(fw->ops.ctx, fw->out, len) == 0 ? 0 : MEI_E_IO;
}

static int protocol_error(struct apf_fw *fw, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int protocol_error(struct apf_fw *fw, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(fw->st.last_error, sizeof(fw->st.last_error), fmt, ap); /* cut if long */
	va_end(ap);
	fw->st.protocol_errors++;
	(void)send_out(fw, apf_encode_disconnect(fw->out, fw->cfg.max_msg_length,
	                                         APF_DISCONNECT_PROTOCOL_ERROR));
	fw->state = FW_ENDED;
	return MEI_E_PROTOCOL;
}

static void wake_pump(struct apf_fw *fw)
{
	uint64_t one = 1;

	if (write(fw->wake, &one, sizeof(one)) != (ssize_t)sizeof(one))
		return; /* the counter is already non-zero: the pump wakes anyway */
}

/* ---- channels ---- */

static struct fw_channel *channel_by_id(struct apf_fw *fw, uint32_t id)
{
	for (unsigned i = 0; i < fw->cfg.channel_slots; i++)
		if (fw->ch[i].used && fw->ch[i].id == id)
			return &fw->ch[i];
	return NULL;
}

static void channel_free(struct apf_fw *fw, struct fw_channel *c)
{
	if (c->svc >= 0)
		close(c->svc);
	free(c->pending);
	*c = (struct fw_channel){.gen = c->gen + 1, .svc = -1};
	fw->st.channels_closed++;
	fw->st.channels_in_use--;
}

/* The service closed or broke: tell the host (once); the slot waits for its CHANNEL_CLOSE. */
static void service_gone(struct apf_fw *fw, struct fw_channel *c)
{
	if (c->svc >= 0)
		close(c->svc);
	c->svc = -1;
	c->pending_off = c->pending_len = 0;
	if (!c->close_sent) {
		c->close_sent = true;
		(void)send_out(
		    fw, apf_encode_channel_close(fw->out, fw->cfg.max_msg_length, c->host_id));
	}
}

/* Host bytes to the service; the host gets its window back in halves. */
static void service_write(struct apf_fw *fw, struct fw_channel *c)
{
	ssize_t n =
	    send(c->svc, c->pending + c->pending_off, c->pending_len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		service_gone(fw, c);
		return;
	}
	c->pending_off += (size_t)n;
	c->pending_len -= (size_t)n;
	if (c->pending_len == 0)
		c->pending_off = 0;
	c->rx_credit += (uint32_t)n;
	if (c->close_sent || c->rx_credit < fw->cfg.window / 2)
		return;
	if (send_out(fw, apf_encode_window_adjust(fw->out, fw->cfg.max_msg_length, c->host_id,
	                                          c->rx_credit)) == 0) {
		fw->st.window_adjusts_sent++;
		c->rx_left += c->rx_credit;
		c->rx_credit = 0;
	}
}

/* Service bytes to the host: never beyond the host's window nor max_msg_length. */
static void service_read(struct apf_fw *fw, struct fw_channel *c)
{
	uint32_t room = fw->cfg.max_msg_length - APF_DATA_HEADER_LEN;
	uint32_t want = c->tx_window < room ? c->tx_window : room;
	ssize_t n = recv(c->svc, fw->rbuf, want, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		service_gone(fw, c);
		return;
	}
	if (send_out(fw, apf_encode_channel_data(fw->out, fw->cfg.max_msg_length, c->host_id,
	                                         fw->rbuf, (uint32_t)n)) != 0)
		return;
	c->tx_window -= (uint32_t)n;
	fw->st.fw_data_frames++;
	fw->st.fw_data_bytes += (unsigned long long)n;
	if ((uint32_t)n > fw->st.fw_data_max)
		fw->st.fw_data_max = (uint32_t)n;
}

static short service_events(const struct fw_channel *c)
{
	short ev = 0;

	if (!c->used || c->svc < 0)
		return 0;
	if (!c->close_sent && c->tx_window > 0)
		ev |= POLLIN;
	if (c->pending_len > 0)
		ev |= POLLOUT;
	return ev;
}

static void pump_serve(struct apf_fw *fw, const struct pollfd *p, const unsigned *slot,
                       const unsigned *gen, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct fw_channel *c = &fw->ch[slot[i]];
		short re = p[i].revents;

		if (!re || !c->used || c->gen != gen[i] || c->svc != p[i].fd)
			continue; /* closed or reused while the pump was polling */
		if ((re & (POLLOUT | POLLERR | POLLHUP)) && c->pending_len > 0)
			service_write(fw, c);
		if ((re & (POLLIN | POLLERR | POLLHUP)) && c->svc >= 0 && !c->close_sent &&
		    c->tx_window > 0)
			service_read(fw, c);
	}
}

static void *pump_main(void *arg)
{
	struct apf_fw *fw = arg;
	unsigned slots = fw->cfg.channel_slots;
	struct pollfd *p = calloc(slots + 1, sizeof(*p));
	unsigned *slot = calloc(slots, sizeof(*slot));
	unsigned *gen = calloc(slots, sizeof(*gen));

	pthread_mutex_lock(&fw->lock);
	while (!fw->stopping && p && slot && gen) {
		unsigned n = 0;
		uint64_t v;
		int ready;

		for (unsigned i = 0; i < slots; i++) {
			short ev = service_events(&fw->ch[i]);

			if (!ev)
				continue;
			p[n + 1] = (struct pollfd){.fd = fw->ch[i].svc, .events = ev};
			slot[n] = i;
			gen[n] = fw->ch[i].gen;
			n++;
		}
		p[0] = (struct pollfd){.fd = fw->wake, .events = POLLIN};
		pthread_mutex_unlock(&fw->lock);
		ready = poll(p, n + 1, -1);
		pthread_mutex_lock(&fw->lock);
		if (ready < 0 && errno != EINTR)
			break;
		if (ready <= 0)
			continue;
		if ((p[0].revents & POLLIN) && read(fw->wake, &v, sizeof(v)) < 0)
			v = 0; /* EAGAIN: another wake-up took it */
		pump_serve(fw, p + 1, slot, gen, n);
	}
	pthread_mutex_unlock(&fw->lock);
	free(p);
	free(slot);
	free(gen);
	return NULL;
}

/* ---- the handshake ---- */

static uint32_t own_major(const struct apf_fw *fw)
{
	return fw->cfg.protocol_major ? fw->cfg.protocol_major : 1;
}

static int send_version(struct apf_fw *fw)
{
	int r = send_out(fw, apf_encode_protocol_version(fw->out, fw->cfg.max_msg_length,
	                                                 own_major(fw), fw->cfg.protocol_minor,
	                                                 APF_TRIGGER_LME_REQUEST, fw->cfg.uuid));

	if (r == 0)
		fw->version_sent = true;
	return r;
}

static bool is_forwarded(const struct apf_fw *fw, uint32_t port)
{
	for (unsigned i = 0; i < fw->forwarded_count; i++)
		if (fw->forwarded[i] == port)
			return true;
	return false;
}

static int on_version(struct apf_fw *fw, const struct apf_msg *m)
{
	int r = 0;

	if (fw->state != FW_WAIT_VERSION)
		return 0; /* rpc-go sends its version again; nothing changes */
	if (!fw->version_sent)
		r = send_version(fw);
	/* Another major: the firmware says its version and waits for the host to go away. */
	if (r < 0 || m->version.major != own_major(fw))
		return r;
	r = send_out(fw, apf_encode_service(fw->out, fw->cfg.max_msg_length, APF_SERVICE_REQUEST,
	                                    APF_SERVICE_PFWD));
	if (r == 0)
		fw->state = FW_WAIT_SERVICE_ACCEPT;
	return r;
}

static int ask_forward(struct apf_fw *fw, uint16_t port)
{
	int r = send_out(fw, apf_encode_global_request(fw->out, fw->cfg.max_msg_length,
	                                               APF_REQUEST_TCPIP_FORWARD, true,
	                                               FORWARD_ADDRESS, port));

	if (r == 0)
		fw->asked[fw->asked_count++] = port;
	return r;
}

static int on_service_accept(struct apf_fw *fw, const struct apf_msg *m)
{
	int r;

	if (fw->state != FW_WAIT_SERVICE_ACCEPT)
		return protocol_error(fw, "SERVICE_ACCEPT out of turn");
	if (m->service.len != strlen(APF_SERVICE_PFWD) ||
	    memcmp(m->service.p, APF_SERVICE_PFWD, m->service.len) != 0)
		return protocol_error(fw, "SERVICE_ACCEPT for another service");
	fw->state = FW_FORWARDING;
	r = ask_forward(fw, fw->wsman_port);
	if (r == 0 && !fw->cfg.wsman_port_only)
		r = ask_forward(fw, fw->redir_port);
	return r;
}

/* Replies come in the order of the requests (SSH's rule). */
static int on_forward_reply(struct apf_fw *fw, const struct apf_msg *m)
{
	uint16_t port;

	if (fw->asked_count == 0)
		return protocol_error(fw, "%s without a request", apf_message_name(m->type));
	port = fw->asked[0];
	memmove(fw->asked, fw->asked + 1, (fw->asked_count - 1) * sizeof(fw->asked[0]));
	fw->asked_count--;
	if (m->type == APF_REQUEST_FAILURE)
		return 0;
	if (!m->success.has_port || m->success.port != port)
		return protocol_error(fw, "REQUEST_SUCCESS does not name port %u", port);
	if (fw->forwarded_count < FORWARD_MAX)
		fw->forwarded[fw->forwarded_count++] = port;
	fw->st.ports_forwarded = fw->forwarded_count;
	if (port == fw->wsman_port)
		fw->st.handshake_done = true;
	return 0;
}

/* ---- channels the host opens ---- */

static int refuse(struct apf_fw *fw, uint32_t host_id, uint32_t reason)
{
	fw->st.channels_refused++;
	return send_out(fw,
	                apf_encode_open_failure(fw->out, fw->cfg.max_msg_length, host_id, reason));
}

static struct fw_channel *free_slot(struct apf_fw *fw)
{
	for (unsigned i = 0; i < fw->cfg.channel_slots; i++)
		if (!fw->ch[i].used)
			return &fw->ch[i];
	return NULL;
}

static int on_open(struct apf_fw *fw, const struct apf_msg *m)
{
	struct fw_channel *c;
	uint32_t port = m->open.connected_port;
	int svc;

	if (fw->state != FW_FORWARDING)
		return protocol_error(fw, "CHANNEL_OPEN before port forwarding was agreed");
	if (!m->open.has_endpoints)
		return refuse(fw, m->open.sender, APF_OPEN_FAILURE_UNKNOWN_CHANNEL_TYPE);
	if (fw->cfg.refuse_open_reason)
		return refuse(fw, m->open.sender, fw->cfg.refuse_open_reason);
	if (!is_forwarded(fw, port))
		return refuse(fw, m->open.sender, APF_OPEN_FAILURE_PROHIBITED);
	c = free_slot(fw);
	if (!c)
		return refuse(fw, m->open.sender, APF_OPEN_FAILURE_RESOURCE_SHORTAGE);
	svc = fw->ops.open_service ? fw->ops.open_service(fw->ops.ctx, (uint16_t)port) : -1;
	if (svc < 0)
		return refuse(fw, m->open.sender, APF_OPEN_FAILURE_CONNECT_FAILED);
	c->pending = malloc(fw->cfg.window);
	if (!c->pending) {
		close(svc);
		return refuse(fw, m->open.sender, APF_OPEN_FAILURE_RESOURCE_SHORTAGE);
	}
	c->used = true;
	c->gen++;
	c->id = fw->next_id++;
	c->host_id = m->open.sender;
	c->port = (uint16_t)port;
	c->svc = svc;
	c->close_sent = false;
	c->tx_window = m->open.window;
	c->rx_left = fw->cfg.window;
	c->rx_credit = 0;
	c->pending_off = c->pending_len = 0;
	fw->st.channels_opened++;
	fw->st.channels_in_use++;
	return send_out(fw, apf_encode_open_confirmation(fw->out, fw->cfg.max_msg_length,
	                                                 c->host_id, c->id, fw->cfg.window,
	                                                 APF_MAX_PACKET_UNLIMITED));
}

static int data_fault(struct apf_fw *fw)
{
	if (fw->cfg.disconnect_after_data && fw->data_frames == fw->cfg.disconnect_after_data) {
		(void)send_out(fw, apf_encode_disconnect(fw->out, fw->cfg.max_msg_length,
		                                         APF_DISCONNECT_CONNECTION_LOST));
		fw->state = FW_ENDED;
		return APF_FW_END;
	}
	if (fw->cfg.reset_after_data && fw->data_frames == fw->cfg.reset_after_data) {
		fw->state = FW_ENDED;
		return APF_FW_END;
	}
	return 0;
}

static int on_data(struct apf_fw *fw, const struct apf_msg *m)
{
	struct fw_channel *c = channel_by_id(fw, m->data.recipient);

	if (!c)
		return protocol_error(fw, "CHANNEL_DATA for channel %u, which is not open",
		                      m->data.recipient);
	if (m->data.len > c->rx_left)
		return protocol_error(fw, "CHANNEL_DATA of %u bytes with %u left in the window",
		                      m->data.len, c->rx_left);
	c->rx_left -= m->data.len;
	fw->data_frames++;
	fw->st.host_data_frames++;
	fw->st.host_data_bytes += m->data.len;
	if (m->data.len > fw->st.host_data_max)
		fw->st.host_data_max = m->data.len;
	if (!c->close_sent && c->svc >= 0 && m->data.len > 0) {
		if (c->pending_off + c->pending_len + m->data.len > fw->cfg.window) {
			memmove(c->pending, c->pending + c->pending_off, c->pending_len);
			c->pending_off = 0;
		}
		memcpy(c->pending + c->pending_off + c->pending_len, m->data.bytes, m->data.len);
		c->pending_len += m->data.len;
	}
	return data_fault(fw);
}

static int on_adjust(struct apf_fw *fw, const struct apf_msg *m)
{
	struct fw_channel *c = channel_by_id(fw, m->adjust.recipient);

	if (!c)
		return protocol_error(fw, "WINDOW_ADJUST for channel %u, which is not open",
		                      m->adjust.recipient);
	if (m->adjust.bytes > UINT32_MAX - c->tx_window)
		return protocol_error(fw, "WINDOW_ADJUST past 2^32 - 1");
	c->tx_window += m->adjust.bytes;
	fw->st.window_adjusts_received++;
	return 0;
}

static int on_close(struct apf_fw *fw, const struct apf_msg *m)
{
	struct fw_channel *c = channel_by_id(fw, m->close.recipient);
	int r = 0;

	if (!c)
		return protocol_error(fw, "CHANNEL_CLOSE for channel %u, which is not open",
		                      m->close.recipient);
	if (!c->close_sent)
		r = send_out(fw,
		             apf_encode_channel_close(fw->out, fw->cfg.max_msg_length, c->host_id));
	channel_free(fw, c);
	if (r == 0 && fw->cfg.close_session_after_channel_close) {
		fw->state = FW_ENDED;
		return APF_FW_END;
	}
	return r;
}

static int on_global_request(struct apf_fw *fw, const struct apf_msg *m)
{
	/* The host asks nothing of the firmware; a request that wants an answer is refused. */
	if (!m->global.want_reply)
		return 0;
	return send_out(fw, apf_encode_bare(fw->out, fw->cfg.max_msg_length, APF_REQUEST_FAILURE));
}

static int dispatch(struct apf_fw *fw, const struct apf_msg *m)
{
	bool channels = fw->state == FW_FORWARDING;

	switch (m->type) {
	case APF_PROTOCOL_VERSION:
		return on_version(fw, m);
	case APF_SERVICE_ACCEPT:
		return on_service_accept(fw, m);
	case APF_REQUEST_SUCCESS:
	case APF_REQUEST_FAILURE:
		return on_forward_reply(fw, m);
	case APF_GLOBAL_REQUEST:
		return on_global_request(fw, m);
	case APF_CHANNEL_OPEN:
		return on_open(fw, m);
	case APF_CHANNEL_DATA:
		return channels ? on_data(fw, m) : protocol_error(fw, "CHANNEL_DATA out of turn");
	case APF_CHANNEL_WINDOW_ADJUST:
		return channels ? on_adjust(fw, m)
		                : protocol_error(fw, "WINDOW_ADJUST out of turn");
	case APF_CHANNEL_CLOSE:
		return channels ? on_close(fw, m) : protocol_error(fw, "CHANNEL_CLOSE out of turn");
	case APF_DISCONNECT:
		fw->state = FW_ENDED;
		return APF_FW_END;
	default:
		return protocol_error(fw, "%s is not for the firmware", apf_message_name(m->type));
	}
}

/* ---- public ---- */

struct apf_fw *apf_fw_new(const struct apf_fw_config *cfg, const struct apf_fw_ops *ops)
{
	struct apf_fw *fw = calloc(1, sizeof(*fw));

	if (!fw)
		return NULL;
	if (cfg)
		fw->cfg = *cfg;
	if (ops)
		fw->ops = *ops;
	if (!fw->cfg.max_msg_length)
		fw->cfg.max_msg_length = APF_FW_DEFAULT_MAX_MSG_LENGTH;
	if (!fw->cfg.window)
		fw->cfg.window = APF_DEFAULT_WINDOW;
	if (!fw->cfg.channel_slots)
		fw->cfg.channel_slots = APF_FW_DEFAULT_SLOTS;
	fw->wsman_port = fw->cfg.tls_enforced ? APF_PORT_HTTPS : APF_PORT_HTTP;
	fw->redir_port = fw->cfg.tls_enforced ? APF_PORT_REDIR_TLS : APF_PORT_REDIR;
	fw->next_id = FIRST_CHANNEL;
	fw->wake = -1;
	pthread_mutex_init(&fw->lock, NULL);
	fw->ch = calloc(fw->cfg.channel_slots, sizeof(*fw->ch));
	fw->out = malloc(fw->cfg.max_msg_length);
	fw->rbuf = malloc(fw->cfg.max_msg_length);
	fw->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!fw->ch || !fw->out || !fw->rbuf || fw->wake < 0 ||
	    fw->cfg.max_msg_length <= APF_DATA_HEADER_LEN || !fw->ops.send_to_host) {
		apf_fw_free(fw);
		return NULL;
	}
	for (unsigned i = 0; i < fw->cfg.channel_slots; i++)
		fw->ch[i].svc = -1;
	if (pthread_create(&fw->pump, NULL, pump_main, fw) != 0) {
		apf_fw_free(fw);
		return NULL;
	}
	fw->pump_started = true;
	return fw;
}

int apf_fw_start(struct apf_fw *fw)
{
	int r = 0;

	pthread_mutex_lock(&fw->lock);
	if (fw->cfg.version_first && !fw->version_sent)
		r = send_version(fw);
	pthread_mutex_unlock(&fw->lock);
	return r;
}

int apf_fw_input(struct apf_fw *fw, const uint8_t *msg, size_t len)
{
	struct apf_msg m;
	int r;

	pthread_mutex_lock(&fw->lock);
	fw->st.host_messages++;
	if (fw->state == FW_ENDED)
		r = APF_FW_END;
	else if (len > fw->cfg.max_msg_length)
		r = protocol_error(fw, "a message of %zu bytes (max_msg_length %u)", len,
		                   fw->cfg.max_msg_length);
	else if (apf_decode(msg, len, &m) != 0)
		r = protocol_error(fw, "malformed %s (%zu bytes)",
		                   len ? apf_message_name(msg[0]) : "empty message", len);
	else
		r = dispatch(fw, &m);
	pthread_mutex_unlock(&fw->lock);
	wake_pump(fw);
	return r;
}

void apf_fw_free(struct apf_fw *fw)
{
	if (!fw)
		return;
	if (fw->pump_started) {
		pthread_mutex_lock(&fw->lock);
		fw->stopping = true;
		pthread_mutex_unlock(&fw->lock);
		wake_pump(fw);
		pthread_join(fw->pump, NULL);
	}
	for (unsigned i = 0; fw->ch && i < fw->cfg.channel_slots; i++) {
		if (fw->ch[i].svc >= 0)
			close(fw->ch[i].svc);
		free(fw->ch[i].pending);
	}
	if (fw->wake >= 0)
		close(fw->wake);
	pthread_mutex_destroy(&fw->lock);
	free(fw->ch);
	free(fw->out);
	free(fw->rbuf);
	free(fw);
}

void apf_fw_get_stats(struct apf_fw *fw, struct apf_fw_stats *out)
{
	pthread_mutex_lock(&fw->lock);
	*out = fw->st;
	pthread_mutex_unlock(&fw->lock);
}
