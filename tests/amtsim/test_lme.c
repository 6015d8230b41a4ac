/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the emulator's LME side, in-process: the APF handshake and channels of each
 * LME connection, the WS-Man server behind them (Digest auth, the activation methods, SOAP
 * faults, TLS on TLS-enforcing machines), the machine state that Setup, CommitChanges and
 * Unprovision change as AMTHI sees it, the state file, the LMS stand-in, and every LME/WS-Man
 * fault. The host side is driven here with raw APF frames (mei's codec), raw HTTP with Digest
 * computed here, and OpenSSL over memory BIOs for TLS, so nothing of the agent is involved.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "../fixture.h"
#include "../helpers/profiles.h"
#include "amtsim.h"
#include "mei.h"
#include "wire.h"

#ifndef AMTSIM_CERT_SCRIPT
#error "AMTSIM_CERT_SCRIPT must name tests/amtsim/make-test-certs.sh"
#endif

#define WAIT_MS  5000
#define LSA_USER "$$OsAdmin"
#define LSA_PASS "OUCUJ9zt0ORhiUJSkwU3OipBir9AGaV9" /* amt11-pre's */
#define LSA19    "mpux5EZpaSij1rPomyuezFDdPbihDX1i" /* amt19-tls's */
#define ADMIN_PW "Adm1n!Pass.word"

#define URI_GENERAL "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings"
#define URI_SETUP   "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SetupAndConfigurationService"
#define URI_HBS     "http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService"
#define NS_SOAP     "http://www.w3.org/2003/05/soap-envelope"
#define NS_ADDR     "http://schemas.xmlsoap.org/ws/2004/08/addressing"

static char cert_dir[] = "/tmp/amtsim-certs-XXXXXX";

/* ---- time ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- machines ---- */

static struct amtsim *load(const char *name)
{
	return profile_load(name, NULL);
}

static struct amtsim *load_with(const char *name, const char *fault)
{
	const char *const faults[] = {fault, NULL};

	return profile_load(name, faults);
}

static void use_test_certs(struct amtsim *m)
{
	char cert[256], key[256], err[512];

	snprintf(cert, sizeof(cert), "%s/amt.pem", cert_dir);
	snprintf(key, sizeof(key), "%s/amt.key", cert_dir);
	if (amtsim_set_tls(m, cert, key, err, sizeof(err)) < 0)
		fail_msg("%s", err);
}

/* Merge CHANGES into DST: objects key by key, anything else replaced. */
static void merge(json_object *dst, json_object *changes)
{
	json_object_object_foreach(changes, k, v)
	{
		json_object *old = NULL;

		if (json_object_is_type(v, json_type_object) &&
		    json_object_object_get_ex(dst, k, &old) &&
		    json_object_is_type(old, json_type_object))
			merge(old, v);
		else
			json_object_object_add(dst, k, json_object_get(v));
	}
}

/*
 * A copy of profile NAME with CHANGES (JSON text) merged in, written into DIR (NULL: /tmp);
 * the machine, or NULL with ERR set. The copy's path is in TMP (the caller removes it).
 */
static struct amtsim *try_changed(const char *name, const char *changes_text, const char *dir,
                                  char *tmp, size_t tmpcap, char *err, size_t errlen)
{
	char src[512];
	json_object *root, *changes;
	int fd;

	profile_path(name, src, sizeof(src));
	root = json_object_from_file(src);
	changes = json_tokener_parse(changes_text);
	assert_non_null(root);
	assert_non_null(changes);
	merge(root, changes);
	json_object_put(changes);
	snprintf(tmp, tmpcap, "%s/amtsim-profile-XXXXXX", dir ? dir : "/tmp");
	fd = mkstemp(tmp);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(json_object_to_file(tmp, root), 0);
	json_object_put(root);
	return amtsim_new(tmp, err, errlen);
}

static struct amtsim *load_changed(const char *name, const char *changes_text)
{
	char tmp[256], err[512] = "";
	struct amtsim *m =
	    try_changed(name, changes_text, NULL, tmp, sizeof(tmp), err, sizeof(err));

	unlink(tmp);
	if (!m)
		fail_msg("%s", err);
	return m;
}

/* ---- AMTHI ---- */

static size_t amthi(struct amtsim *m, uint32_t command, const void *payload, size_t plen,
                    uint8_t *reply, size_t cap)
{
	struct amtsim_conn *c = NULL;
	uint8_t req[64];
	struct wbuf w = wbuf_init(req, sizeof(req));
	uint32_t max;
	uint8_t version;
	size_t len = 0;
	bool more;

	put_u8(&w, 1);
	put_u8(&w, 1);
	put_u16le(&w, 0);
	put_u32le(&w, command);
	put_u32le(&w, (uint32_t)plen);
	put_bytes(&w, payload, plen);
	assert_true(wbuf_ok(&w));
	assert_int_equal(amtsim_connect(m, MEI_GUID_AMTHI, &c, &max, &version), 0);
	assert_int_equal(amtsim_send(c, req, w.len), 0);
	assert_int_equal(amtsim_recv(c, reply, cap, &len, &more), 0);
	assert_false(more);
	amtsim_disconnect(c);
	return len;
}

static uint32_t amthi_status(const uint8_t *reply, size_t len)
{
	struct cursor c = cursor_init(reply + 12, len - 12);
	uint32_t v = 0;

	assert_true(len >= 16);
	assert_int_equal(cur_u32le(&c, &v), 0);
	return v;
}

static uint32_t amthi_u32(struct amtsim *m, uint32_t command)
{
	uint8_t reply[64];
	size_t n = amthi(m, command, NULL, 0, reply, sizeof(reply));
	struct cursor c = cursor_init(reply + 16, n - 16);
	uint32_t v = 0;

	assert_int_equal(n, 20);
	assert_int_equal(amthi_status(reply, n), AMTHI_STATUS_SUCCESS);
	assert_int_equal(cur_u32le(&c, &v), 0);
	return v;
}

static void expect_modes(struct amtsim *m, uint32_t mode, uint32_t state)
{
	assert_int_equal(amthi_u32(m, AMTHI_CMD_GET_CONTROL_MODE), mode);
	assert_int_equal(amthi_u32(m, AMTHI_CMD_GET_PROVISIONING_STATE), state);
}

/* ---- the host's side of APF ---- */

struct host {
	struct amtsim *m;
	struct amtsim_conn *c;
	uint32_t max;
	uint8_t *msg; /* the last message received */
	size_t msg_len;
	uint16_t ports[4];
	unsigned port_count;
	bool reset;
	uint32_t disconnect; /* DISCONNECT's reason, 0 if none came */
	unsigned versions;   /* PROTOCOL_VERSION messages from the firmware */

	/* the channel */
	bool open;
	uint32_t our_id, fw_id;
	uint32_t tx_window; /* what we may send */
	uint32_t rx_window; /* what we offered */
	uint32_t rx_credit; /* received, not yet given back */
	bool fw_closed;
	uint32_t refused; /* CHANNEL_OPEN_FAILURE's reason */
	uint8_t *in;      /* channel bytes received, not yet taken */
	size_t in_len, in_cap;
};

static int host_send(struct host *h, const uint8_t *b, size_t n)
{
	assert_true(n > 0);
	return amtsim_send(h->c, b, n);
}

/* One message within MS: 0, ENODEV (reset) or ETIMEDOUT. */
static int host_recv(struct host *h, int ms)
{
	long long end = now_ms() + ms;
	size_t len = 0;

	for (;;) {
		size_t got = 0;
		bool more = false;
		int r = amtsim_recv(h->c, h->msg + len, h->max - len, &got, &more);

		if (r == 0) {
			len += got;
			if (!more) {
				h->msg_len = len;
				return 0;
			}
			continue;
		}
		if (r == ENODEV) {
			h->reset = true;
			return ENODEV;
		}
		assert_int_equal(r, EAGAIN);
		long long left = end - now_ms();
		if (left <= 0)
			return ETIMEDOUT;
		struct pollfd p = {.fd = amtsim_conn_fd(h->c), .events = POLLIN};
		(void)poll(&p, 1, (int)left);
	}
}

static void host_connect(struct host *h, struct amtsim *m)
{
	uint8_t version;

	memset(h, 0, sizeof(*h));
	h->m = m;
	assert_int_equal(amtsim_connect(m, MEI_GUID_LME, &h->c, &h->max, &version), 0);
	h->msg = malloc(h->max);
	assert_non_null(h->msg);
}

static void host_free(struct host *h)
{
	if (h->c)
		amtsim_disconnect(h->c);
	h->c = NULL;
	free(h->msg);
	free(h->in);
	h->msg = NULL;
	h->in = NULL;
}

static void send_built(struct host *h, size_t n)
{
	assert_true(n > 0);
	assert_int_equal(host_send(h, h->msg, n), 0);
}

static void credit(struct host *h)
{
	uint8_t b[16];

	if (!h->open || h->rx_credit < h->rx_window / 2 || h->fw_closed)
		return;
	assert_int_equal(
	    host_send(h, b, apf_encode_window_adjust(b, sizeof(b), h->fw_id, h->rx_credit)), 0);
	h->rx_credit = 0;
}

/*
 * Take the next message and handle what needs no decision: forward requests (answered),
 * channel data and windows, closes, DISCONNECT. Returns its type, 0 on reset, -1 on timeout.
 */
static int host_step(struct host *h, int ms)
{
	struct apf_msg m;
	uint8_t b[64];
	int r = host_recv(h, ms);

	if (r == ENODEV)
		return 0;
	if (r == ETIMEDOUT)
		return -1;
	assert_int_equal(apf_decode(h->msg, h->msg_len, &m), 0);
	switch (m.type) {
	case APF_SERVICE_REQUEST:
		assert_int_equal(host_send(h, b,
		                           apf_encode_service(b, sizeof(b), APF_SERVICE_ACCEPT,
		                                              APF_SERVICE_PFWD)),
		                 0);
		break;
	case APF_GLOBAL_REQUEST:
		assert_true(m.global.has_forward);
		h->ports[h->port_count++] = (uint16_t)m.global.port;
		assert_int_equal(
		    host_send(h, b, apf_encode_request_success_port(b, sizeof(b), m.global.port)),
		    0);
		break;
	case APF_CHANNEL_DATA:
		assert_true(h->open);
		assert_int_equal(m.data.recipient, h->our_id);
		assert_true(m.data.len <= h->max - APF_DATA_HEADER_LEN);
		if (h->in_len + m.data.len > h->in_cap) {
			h->in_cap = (h->in_len + m.data.len) * 2;
			h->in = realloc(h->in, h->in_cap);
			assert_non_null(h->in);
		}
		memcpy(h->in + h->in_len, m.data.bytes, m.data.len);
		h->in_len += m.data.len;
		h->rx_credit += m.data.len;
		credit(h);
		break;
	case APF_CHANNEL_WINDOW_ADJUST:
		h->tx_window += m.adjust.bytes;
		break;
	case APF_CHANNEL_CLOSE:
		h->fw_closed = true;
		break;
	case APF_DISCONNECT:
		h->disconnect = m.disconnect.reason;
		break;
	case APF_PROTOCOL_VERSION:
		h->versions++;
		break;
	default:
		break;
	}
	return m.type;
}

static bool has_port(const struct host *h, uint16_t port)
{
	for (unsigned i = 0; i < h->port_count; i++)
		if (h->ports[i] == port)
			return true;
	return false;
}

/* PROTOCOL_VERSION 1.0 and the rest, until both ports are forwarded. */
static void handshake(struct host *h)
{
	long long end = now_ms() + WAIT_MS;

	send_built(
	    h, apf_encode_protocol_version(h->msg, h->max, 1, 0, APF_TRIGGER_LME_REQUEST, NULL));
	while (h->port_count < 2)
		assert_true(host_step(h, (int)(end - now_ms())) > 0);
	assert_int_equal(h->versions, 1);
}

static void host_start(struct host *h, struct amtsim *m)
{
	host_connect(h, m);
	handshake(h);
}

/* Open a channel to PORT with receive WINDOW: true when confirmed, false when refused. */
static bool channel_open(struct host *h, uint16_t port, uint32_t window)
{
	struct apf_msg m;
	long long end = now_ms() + WAIT_MS;

	h->our_id++;
	h->open = false;
	h->fw_closed = false;
	h->refused = 0;
	h->in_len = 0;
	h->rx_window = window;
	h->rx_credit = 0;
	send_built(h, apf_encode_channel_open(h->msg, h->max, APF_CHANNEL_TYPE_FORWARDED, h->our_id,
	                                      window, "127.0.0.1", port, "127.0.0.1",
	                                      50000 + h->our_id));
	for (;;) {
		assert_int_equal(host_recv(h, (int)(end - now_ms())), 0);
		assert_int_equal(apf_decode(h->msg, h->msg_len, &m), 0);
		if (m.type == APF_CHANNEL_OPEN_CONFIRMATION) {
			assert_int_equal(m.confirm.recipient, h->our_id);
			h->fw_id = m.confirm.sender;
			h->tx_window = m.confirm.window;
			h->open = true;
			return true;
		}
		if (m.type == APF_CHANNEL_OPEN_FAILURE) {
			assert_int_equal(m.failure.recipient, h->our_id);
			h->refused = m.failure.reason;
			return false;
		}
		fail_msg("unexpected %s while opening a channel", apf_message_name(m.type));
	}
}

/* Send BYTES on the channel within the firmware's window. false when the session ended. */
static bool channel_write(struct host *h, const void *bytes, size_t n)
{
	const uint8_t *p = bytes;
	long long end = now_ms() + WAIT_MS;
	uint8_t *frame = malloc(h->max);

	assert_non_null(frame);
	while (n > 0) {
		size_t room = h->max - APF_DATA_HEADER_LEN, k = n;

		while (h->tx_window == 0 && !h->reset && !h->disconnect)
			assert_true(host_step(h, (int)(end - now_ms())) >= 0);
		if (h->reset || h->disconnect) {
			free(frame);
			return false;
		}
		if (k > room)
			k = room;
		if (k > h->tx_window)
			k = h->tx_window;
		if (host_send(h, frame,
		              apf_encode_channel_data(frame, h->max, h->fw_id, p, (uint32_t)k)) !=
		    0) {
			free(frame);
			h->reset = true;
			return false;
		}
		h->tx_window -= (uint32_t)k;
		p += k;
		n -= k;
	}
	free(frame);
	return true;
}

/* Wait until IN holds N bytes, the firmware closed, or the session ended. */
static void channel_fill(struct host *h, size_t n, int ms)
{
	long long end = now_ms() + ms;

	while (h->in_len < n && !h->fw_closed && !h->reset && !h->disconnect) {
		int t = host_step(h, (int)(end - now_ms()));

		if (t < 0)
			return;
	}
}

/* Close from our side (or answer the firmware's close) and wait for the slot to be free. */
static void channel_close(struct host *h)
{
	uint8_t b[16];
	long long end = now_ms() + WAIT_MS;

	if (!h->open || h->reset || h->disconnect) {
		h->open = false;
		return;
	}
	if (host_send(h, b, apf_encode_channel_close(b, sizeof(b), h->fw_id)) != 0) {
		h->reset = true;
		h->open = false;
		return;
	}
	while (!h->fw_closed && !h->reset && !h->disconnect)
		if (host_step(h, (int)(end - now_ms())) < 0)
			break;
	h->open = false;
}

/* ---- a byte stream over the channel, plain or TLS (memory BIOs) ---- */

struct stream {
	struct host *h;
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *rbio, *wbio;
	size_t taken; /* bytes of h->in given to TLS */
	char subject[256];
};

static bool tls_flush(struct stream *s)
{
	char buf[16384];
	int n;

	while ((n = BIO_read(s->wbio, buf, sizeof(buf))) > 0)
		if (!channel_write(s->h, buf, (size_t)n))
			return false;
	return true;
}

/* More ciphertext from the channel into the TLS engine; false at the end of the stream. */
static bool tls_feed(struct stream *s)
{
	size_t have = s->h->in_len;

	if (s->taken == have)
		channel_fill(s->h, have + 1, WAIT_MS);
	if (s->h->in_len > s->taken) {
		BIO_write(s->rbio, s->h->in + s->taken, (int)(s->h->in_len - s->taken));
		s->taken = s->h->in_len;
		return true;
	}
	BIO_set_mem_eof_return(s->rbio, 0);
	return false;
}

static bool stream_open(struct stream *s, struct host *h, bool tls)
{
	char ca[256];

	memset(s, 0, sizeof(*s));
	s->h = h;
	if (!tls)
		return true;
	snprintf(ca, sizeof(ca), "%s/ca.pem", cert_dir);
	s->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(s->ctx);
	assert_int_equal(SSL_CTX_load_verify_locations(s->ctx, ca, NULL), 1);
	SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
	s->ssl = SSL_new(s->ctx);
	s->rbio = BIO_new(BIO_s_mem());
	s->wbio = BIO_new(BIO_s_mem());
	assert_true(s->ssl && s->rbio && s->wbio);
	BIO_set_mem_eof_return(s->rbio, -1);
	SSL_set_bio(s->ssl, s->rbio, s->wbio);
	SSL_set_connect_state(s->ssl);
	for (;;) {
		int r = SSL_do_handshake(s->ssl);

		if (!tls_flush(s))
			return false;
		if (r == 1)
			break;
		if (SSL_get_error(s->ssl, r) != SSL_ERROR_WANT_READ || !tls_feed(s))
			return false;
	}
	X509 *peer = SSL_get1_peer_certificate(s->ssl);
	assert_non_null(peer);
	X509_NAME_oneline(X509_get_subject_name(peer), s->subject, sizeof(s->subject));
	X509_free(peer);
	assert_int_equal(SSL_get_verify_result(s->ssl), X509_V_OK);
	return true;
}

static bool stream_write(struct stream *s, const char *text, size_t n)
{
	if (!s->ssl)
		return channel_write(s->h, text, n);
	assert_int_equal(SSL_write(s->ssl, text, (int)n), (int)n);
	return tls_flush(s);
}

/* Everything the server sends until it closes or WANT bytes are in (0: until it closes). */
static char *stream_read(struct stream *s, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	if (!s->ssl) {
		channel_fill(s->h, SIZE_MAX, WAIT_MS);
		n = s->h->in_len < cap - 1 ? s->h->in_len : cap - 1;
		memcpy(out, s->h->in, n);
	} else {
		for (;;) {
			int r = SSL_read(s->ssl, out + n, (int)(cap - 1 - n));

			if (r > 0) {
				n += (size_t)r;
				continue;
			}
			if (SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_READ && tls_feed(s))
				continue;
			break;
		}
	}
	out[n] = '\0';
	*len = n;
	return out;
}

static void stream_close(struct stream *s)
{
	if (s->ssl)
		SSL_free(s->ssl); /* frees the BIOs */
	if (s->ctx)
		SSL_CTX_free(s->ctx);
	s->ssl = NULL;
	s->ctx = NULL;
}

/* ---- HTTP with Digest ---- */

struct challenge {
	char realm[160];
	char nonce[160];
	char opaque[160];
	bool stale;
};

struct response {
	int status; /* 0: no response (dropped) */
	struct challenge ch;
	bool has_challenge;
	char *body;
	size_t body_len;
	long long ms;
};

static void md5_hex(const char *s, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	assert_int_equal(EVP_Digest(s, strlen(s), md, &n, EVP_md5(), NULL), 1);
	for (size_t i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[32] = '\0';
}

static void ha1_of(const char *user, const char *realm, const char *pass, char out[33])
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s:%s:%s", user, realm, pass);
	md5_hex(buf, out);
}

/* The quoted value of KEY in a WWW-Authenticate header. */
static void auth_param(const char *hdr, const char *key, char *out, size_t cap)
{
	char pat[64];
	const char *p, *q;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "%s=\"", key);
	p = strstr(hdr, pat);
	if (!p)
		return;
	p += strlen(pat);
	q = strchr(p, '"');
	if (q && (size_t)(q - p) < cap) {
		memcpy(out, p, (size_t)(q - p));
		out[q - p] = '\0';
	}
}

static void parse_response(const char *raw, size_t n, struct response *r)
{
	const char *end = strstr(raw, "\r\n\r\n");
	const char *wa;

	memset(r, 0, sizeof(*r));
	if (n == 0 || !end)
		return;
	assert_int_equal(strncmp(raw, "HTTP/1.1 ", 9), 0);
	r->status = (int)strtol(raw + 9, NULL, 10);
	wa = strcasestr(raw, "\r\nWWW-Authenticate: Digest ");
	if (wa && wa < end) {
		const char *eol = strstr(wa + 2, "\r\n");
		char hdr[1024];
		size_t k = (size_t)(eol - wa);

		assert_true(k < sizeof(hdr));
		memcpy(hdr, wa, k);
		hdr[k] = '\0';
		auth_param(hdr, "realm", r->ch.realm, sizeof(r->ch.realm));
		auth_param(hdr, "nonce", r->ch.nonce, sizeof(r->ch.nonce));
		auth_param(hdr, "opaque", r->ch.opaque, sizeof(r->ch.opaque));
		r->ch.stale = strstr(hdr, "stale=true") || strstr(hdr, "stale=\"true\"");
		r->has_challenge = true;
	}
	r->body_len = n - (size_t)(end + 4 - raw);
	r->body = malloc(r->body_len + 1);
	assert_non_null(r->body);
	memcpy(r->body, end + 4, r->body_len);
	r->body[r->body_len] = '\0';
}

struct creds {
	const char *user;
	const char *pass; /* or */
	const char *ha1;  /* the admin's HA1 */
};

/* One HTTP exchange on a fresh channel: PATH with BODY, with an Authorization from CH. */
static void http_once(struct host *h, bool tls, const char *method, const char *path,
                      const char *body, const struct creds *cr, const struct challenge *ch,
                      struct response *r)
{
	char req[16384], auth[1024] = "", a1[33], a2[33], resp[33], buf[1024];
	struct stream s;
	size_t n;
	char *raw;
	long long t0 = now_ms();
	uint16_t port = tls ? APF_PORT_HTTPS : APF_PORT_HTTP;

	if (cr && ch) {
		if (cr->ha1)
			snprintf(a1, sizeof(a1), "%s", cr->ha1);
		else
			ha1_of(cr->user, ch->realm, cr->pass, a1);
		snprintf(buf, sizeof(buf), "%s:%s", method, path);
		md5_hex(buf, a2);
		snprintf(buf, sizeof(buf), "%s:%s:00000001:0a4f113b:auth:%s", a1, ch->nonce, a2);
		md5_hex(buf, resp);
		snprintf(auth, sizeof(auth),
		         "Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", "
		         "uri=\"%s\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", "
		         "response=\"%s\", opaque=\"%s\", algorithm=MD5\r\n",
		         cr->user, ch->realm, ch->nonce, path, resp, ch->opaque);
	}
	snprintf(req, sizeof(req),
	         "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: "
	         "application/soap+xml;charset=UTF-8\r\nContent-Length: %zu\r\n%sConnection: "
	         "close\r\n\r\n%s",
	         method, path, port, strlen(body), auth, body);
	memset(r, 0, sizeof(*r));
	assert_true(channel_open(h, port, 1u << 20));
	if (stream_open(&s, h, tls) && stream_write(&s, req, strlen(req))) {
		raw = stream_read(&s, &n);
		parse_response(raw, n, r);
		free(raw);
	}
	stream_close(&s);
	channel_close(h);
	r->ms = now_ms() - t0;
}

static void response_free(struct response *r)
{
	free(r->body);
	r->body = NULL;
}

/* A WS-Man request with Digest auth: the 401 first, then the answer. */
static void wsman(struct host *h, bool tls, const char *body, const struct creds *cr,
                  struct response *r)
{
	struct response first;

	http_once(h, tls, "POST", "/wsman", body, NULL, NULL, &first);
	assert_int_equal(first.status, 401);
	assert_true(first.has_challenge);
	http_once(h, tls, "POST", "/wsman", body, cr, &first.ch, r);
	r->ch = first.ch;
	response_free(&first);
}

/* ---- SOAP ---- */

static char *envelope(const char *action, const char *resource, const char *message_id,
                      const char *body)
{
	char *out = malloc(8192);

	assert_non_null(out);
	snprintf(out, 8192,
	         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	         "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_ADDR "\" "
	         "xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"><s:Header>"
	         "<a:Action s:mustUnderstand=\"true\">%s</a:Action>"
	         "<a:To s:mustUnderstand=\"true\">/wsman</a:To>"
	         "<w:ResourceURI s:mustUnderstand=\"true\">%s</w:ResourceURI>"
	         "<a:MessageID s:mustUnderstand=\"true\">%s</a:MessageID>"
	         "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/"
	         "anonymous</a:Address></a:ReplyTo>"
	         "<w:OperationTimeout>PT60S</w:OperationTimeout></s:Header>"
	         "<s:Body>%s</s:Body></s:Envelope>",
	         action, resource, message_id, body);
	return out;
}

static char *get_request(const char *resource)
{
	return envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", resource, "7", "");
}

static char *setup_request(const char *type, const char *ha1)
{
	char body[1024], action[256];

	snprintf(action, sizeof(action), "%s/Setup", URI_HBS);
	snprintf(body, sizeof(body),
	         "<h:Setup_INPUT xmlns:h=\"%s\"><h:NetAdminPassEncryptionType>%s"
	         "</h:NetAdminPassEncryptionType><h:NetworkAdminPassword>%s"
	         "</h:NetworkAdminPassword></h:Setup_INPUT>",
	         URI_HBS, type, ha1);
	return envelope(action, URI_HBS, "11", body);
}

static char *method_request(const char *resource, const char *method)
{
	char body[512], action[256];

	snprintf(action, sizeof(action), "%s/%s", resource, method);
	snprintf(body, sizeof(body), "<h:%s_INPUT xmlns:h=\"%s\"/>", method, resource);
	return envelope(action, resource, "12", body);
}

/* The text of the first element named NAME (any namespace) in the reply. */
static bool reply_text(const struct response *r, const char *name, char *out, size_t cap)
{
	xmlDocPtr doc = xmlReadMemory(r->body, (int)r->body_len, NULL, NULL, XML_PARSE_NONET);
	xmlNodePtr stack[64];
	int sp = 0;
	bool found = false;

	if (!doc)
		return false;
	stack[sp++] = xmlDocGetRootElement(doc);
	while (sp > 0 && !found) {
		xmlNodePtr n = stack[--sp];

		for (; n; n = n->next) {
			if (n->type != XML_ELEMENT_NODE)
				continue;
			if (xmlStrEqual(n->name, (const xmlChar *)name)) {
				xmlChar *t = xmlNodeGetContent(n);

				snprintf(out, cap, "%s", t ? (const char *)t : "");
				xmlFree(t);
				found = true;
				break;
			}
			if (n->children && sp < 64)
				stack[sp++] = n->children;
		}
	}
	xmlFreeDoc(doc);
	return found;
}

static unsigned return_value(const struct response *r)
{
	char text[32];

	assert_int_equal(r->status, 200);
	assert_true(reply_text(r, "ReturnValue", text, sizeof(text)));
	return (unsigned)strtoul(text, NULL, 10);
}

static void expect_text(const struct response *r, const char *name, const char *want)
{
	char text[512];

	if (!reply_text(r, name, text, sizeof(text)))
		fail_msg("no <%s> in: %s", name, r->body);
	assert_string_equal(text, want);
}

/* A SOAP fault with HTTP 400 whose Subcode/Value is SUBCODE. */
static void expect_fault(const struct response *r, const char *subcode)
{
	char text[256];
	xmlDocPtr doc;
	xmlNodePtr root;

	assert_int_equal(r->status, 400);
	doc = xmlReadMemory(r->body, (int)r->body_len, NULL, NULL, XML_PARSE_NONET);
	assert_non_null(doc);
	root = xmlDocGetRootElement(doc);
	assert_non_null(root->ns);
	assert_string_equal((const char *)root->ns->href, NS_SOAP);
	xmlFreeDoc(doc);
	expect_text(r, "Action", "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault");
	assert_true(reply_text(r, "Subcode", text, sizeof(text)));
	assert_non_null(strstr(text, subcode));
	assert_true(reply_text(r, "Text", text, sizeof(text)));
	assert_true(text[0] != '\0');
}

static const struct creds local_account = {LSA_USER, LSA_PASS, NULL};

/* Setup as the local account with ADMIN_PW hashed over REALM; its ReturnValue. */
static unsigned setup_admin(struct host *h, bool tls, const char *lsa_pass, const char *realm)
{
	const struct creds cr = {LSA_USER, lsa_pass, NULL};
	struct response r;
	char ha1[33];
	char *req;
	unsigned rv;

	ha1_of("admin", realm, ADMIN_PW, ha1);
	req = setup_request("2", ha1);
	wsman(h, tls, req, &cr, &r);
	rv = return_value(&r);
	expect_text(&r, "Action", URI_HBS "/SetupResponse");
	expect_text(&r, "RelatesTo", "11");
	free(req);
	response_free(&r);
	return rv;
}

/* Get AMT_GeneralSettings as CR: the HTTP status. */
static int general_get(struct host *h, bool tls, const struct creds *cr)
{
	struct response r;
	char *req = get_request(URI_GENERAL);
	int status;

	wsman(h, tls, req, cr, &r);
	status = r.status;
	free(req);
	response_free(&r);
	return status;
}

static const char *realm_of(struct amtsim *m)
{
	static struct amtsim_machine mm;

	amtsim_get_machine(m, &mm);
	return mm.digest_realm;
}

/* amt11-pre with FAULT (NULL: none), a host on its LME client, and a Get of
 * AMT_GeneralSettings to send. */
struct rig {
	struct amtsim *m;
	char *req;
	struct host h;
};

static void rig_start(struct rig *rig, const char *fault)
{
	rig->m = load_with("amt11-pre", fault);
	rig->req = get_request(URI_GENERAL);
	host_start(&rig->h, rig->m);
}

static void rig_end(struct rig *rig)
{
	host_free(&rig->h);
	free(rig->req);
	amtsim_free(rig->m);
}

/* ---- tests: APF ---- */

static void test_handshake_and_ports(void **state)
{
	struct amtsim *m = load("amt11-pre");
	struct amtsim_stats st;
	struct host h;

	(void)state;
	host_start(&h, m);
	assert_true(has_port(&h, APF_PORT_HTTP));
	assert_true(has_port(&h, APF_PORT_REDIR));
	/* the redirection port is forwarded, but nothing serves it */
	assert_false(channel_open(&h, APF_PORT_REDIR, 4096));
	assert_int_equal(h.refused, APF_OPEN_FAILURE_CONNECT_FAILED);
	/* a port not forwarded */
	assert_false(channel_open(&h, APF_PORT_HTTPS, 4096));
	assert_int_equal(h.refused, APF_OPEN_FAILURE_PROHIBITED);
	assert_true(channel_open(&h, APF_PORT_HTTP, 4096));
	channel_close(&h);
	assert_false(h.reset);
	host_free(&h);

	amtsim_get_stats(m, &st);
	assert_int_equal(st.connects[AMTSIM_CLIENT_LME], 1);
	assert_int_equal(st.apf_handshakes, 1);
	assert_int_equal(st.apf_channels, 1);
	assert_int_equal(st.apf_channels_refused, 2);
	amtsim_free(m);
}

static void test_get_general_settings(void **state)
{
	struct amtsim *m = load("amt11-pre");
	char *req = get_request(URI_GENERAL);
	struct response r;
	struct host h;

	(void)state;
	host_start(&h, m);
	wsman(&h, false, req, &local_account, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ch.realm, realm_of(m));
	assert_string_equal(realm_of(m), "Digest:6C3FCF6EFDEE41BF8CAF5D4920D19618");
	expect_text(&r, "DigestRealm", realm_of(m));
	expect_text(&r, "RelatesTo", "7");
	expect_text(&r, "Action", "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse");
	expect_text(&r, "ResourceURI", URI_GENERAL);
	response_free(&r);
	free(req);

	req = get_request(URI_HBS);
	wsman(&h, false, req, &local_account, &r);
	expect_text(&r, "CurrentControlMode", "0");
	expect_text(&r, "AllowedControlModes", "2");
	{
		char nonce[64];

		assert_true(reply_text(&r, "ConfigurationNonce", nonce, sizeof(nonce)));
		assert_int_equal(strlen(nonce), 28); /* 20 bytes in base64 */
	}
	response_free(&r);
	free(req);

	req = get_request(URI_SETUP);
	wsman(&h, false, req, &local_account, &r);
	expect_text(&r, "ProvisioningState", "0");
	response_free(&r);
	free(req);
	host_free(&h);

	assert_int_equal(amtsim_wsman_count(m, "Get"), 3);
	amtsim_free(m);
}

static void test_digest_refusals(void **state)
{
	const struct creds wrong = {LSA_USER, "not-the-password", NULL};
	const struct creds stranger = {"someone", LSA_PASS, NULL};
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	struct response r;
	struct amtsim_stats st;
	struct rig rig;

	(void)state;
	rig_start(&rig, NULL);
	assert_int_equal(general_get(&rig.h, false, &wrong), 401);
	assert_int_equal(general_get(&rig.h, false, &stranger), 401);
	assert_int_equal(general_get(&rig.h, false, &admin), 401); /* no admin password yet */
	http_once(&rig.h, false, "GET", "/wsman", "", NULL, NULL, &r);
	assert_int_equal(r.status, 405);
	response_free(&r);
	http_once(&rig.h, false, "POST", "/index.htm", rig.req, NULL, NULL, &r);
	assert_int_equal(r.status, 404);
	response_free(&r);

	amtsim_get_stats(rig.m, &st);
	assert_int_equal(st.wsman_authenticated, 0);
	assert_int_equal(st.wsman_unauthorized, 6);
	rig_end(&rig);
}

static void test_unknown_resource_and_method(void **state)
{
	struct amtsim *m = load("amt11-pre");
	char *req = get_request("http://intel.com/wbem/wscim/1/amt-schema/1/AMT_Nothing");
	struct response r;
	struct host h;

	(void)state;
	host_start(&h, m);
	wsman(&h, false, req, &local_account, &r);
	expect_fault(&r, "DestinationUnreachable");
	expect_text(&r, "RelatesTo", "7");
	response_free(&r);
	free(req);

	req = method_request(URI_HBS, "NoSuchMethod");
	wsman(&h, false, req, &local_account, &r);
	expect_fault(&r, "ActionNotSupported");
	response_free(&r);
	free(req);

	/* the body's element must be the method's _INPUT in the resource's namespace */
	req = envelope(URI_HBS "/Setup", URI_HBS, "3", "<Setup_INPUT/>");
	wsman(&h, false, req, &local_account, &r);
	expect_fault(&r, "SchemaValidationError");
	response_free(&r);
	free(req);

	wsman(&h, false, "not xml", &local_account, &r);
	expect_fault(&r, "SchemaValidationError");
	response_free(&r);
	host_free(&h);
	amtsim_free(m);
}

/* ---- tests: activation ---- */

static void test_setup_to_ccm(void **state)
{
	struct amtsim *m = load("amt11-pre");
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	const struct creds admin_wrong = {"admin", "Adm1n!Pass.wordX", NULL};
	struct amtsim_machine mm;
	struct response r;
	char ha1[33], *req;
	struct host h;

	(void)state;
	host_start(&h, m);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	assert_int_equal(setup_admin(&h, false, LSA_PASS, realm_of(m)), 0);
	/* AMTHI sees it at once */
	expect_modes(m, AMTHI_CONTROL_CCM, AMTHI_PROVISIONING_POST);
	amtsim_get_machine(m, &mm);
	ha1_of("admin", mm.digest_realm, ADMIN_PW, ha1);
	assert_string_equal(mm.admin_ha1, ha1);

	/* the local account is done; admin works with the right password only */
	assert_int_equal(general_get(&h, false, &local_account), 401);
	assert_int_equal(general_get(&h, false, &admin), 200);
	assert_int_equal(general_get(&h, false, &admin_wrong), 401);

	req = get_request(URI_HBS);
	wsman(&h, false, req, &admin, &r);
	expect_text(&r, "CurrentControlMode", "1");
	response_free(&r);
	free(req);

	/* Setup again: invalid state */
	req = setup_request("2", ha1);
	wsman(&h, false, req, &admin, &r);
	assert_int_equal(return_value(&r), 2);
	response_free(&r);
	free(req);

	/* CommitChanges as admin on a machine already "post": nothing changes */
	req = method_request(URI_SETUP, "CommitChanges");
	wsman(&h, false, req, &admin, &r);
	assert_int_equal(return_value(&r), 0);
	expect_text(&r, "Action", URI_SETUP "/CommitChangesResponse");
	response_free(&r);
	free(req);
	host_free(&h);

	expect_modes(m, AMTHI_CONTROL_CCM, AMTHI_PROVISIONING_POST);
	assert_int_equal(amtsim_wsman_count(m, "Setup"), 2);
	assert_int_equal(amtsim_wsman_count(m, "CommitChanges"), 1);
	amtsim_free(m);
}

static void test_setup_parameters(void **state)
{
	struct amtsim *m = load("amt11-pre");
	struct response r;
	char *req;
	struct host h;

	(void)state;
	host_start(&h, m);
	req = setup_request("1", "f73b2c17b1ecbd7a235ec37d66cbed71");
	wsman(&h, false, req, &local_account, &r);
	assert_int_equal(return_value(&r), 3);
	response_free(&r);
	free(req);
	req = setup_request("2", "f73b2c17b1ecbd7a235ec37d66cbed7");
	wsman(&h, false, req, &local_account, &r);
	assert_int_equal(return_value(&r), 3);
	response_free(&r);
	free(req);
	req = setup_request("2", "not hex at all, not hex at all!!");
	wsman(&h, false, req, &local_account, &r);
	assert_int_equal(return_value(&r), 3);
	response_free(&r);
	free(req);
	/* CommitChanges and Unprovision are the admin's */
	req = method_request(URI_SETUP, "CommitChanges");
	wsman(&h, false, req, &local_account, &r);
	expect_fault(&r, "AccessDenied");
	response_free(&r);
	free(req);
	req = method_request(URI_SETUP, "Unprovision");
	wsman(&h, false, req, &local_account, &r);
	expect_fault(&r, "AccessDenied");
	response_free(&r);
	free(req);
	host_free(&h);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	amtsim_free(m);
}

static void test_tls_setup_then_commit(void **state)
{
	struct amtsim *m = load("amt19-tls");
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	const struct creds lsa = {LSA_USER, LSA19, NULL};
	struct response r;
	struct stream s;
	char err[512];
	char *req;
	struct host h;

	(void)state;
	assert_true(amtsim_tls_enforced(m));
	assert_int_equal(amtsim_check_tls(m, err, sizeof(err)), -1);
	use_test_certs(m);
	assert_int_equal(amtsim_check_tls(m, err, sizeof(err)), 0);
	host_start(&h, m);
	assert_true(has_port(&h, APF_PORT_HTTPS));
	assert_true(has_port(&h, APF_PORT_REDIR_TLS));
	assert_false(has_port(&h, APF_PORT_HTTP));

	/* AMT's certificate: "AMT RCFG", chained to the test CA */
	assert_true(channel_open(&h, APF_PORT_HTTPS, 1u << 20));
	assert_true(stream_open(&s, &h, true));
	assert_non_null(strstr(s.subject, "CN=AMT RCFG"));
	stream_close(&s);
	channel_close(&h);

	assert_int_equal(general_get(&h, true, &lsa), 200);
	assert_int_equal(setup_admin(&h, true, LSA19, realm_of(m)), 0);
	/* TLS-enforcing firmware: CCM, but "in" until CommitChanges */
	expect_modes(m, AMTHI_CONTROL_CCM, AMTHI_PROVISIONING_IN);
	assert_int_equal(general_get(&h, true, &lsa), 401);

	req = method_request(URI_SETUP, "CommitChanges");
	wsman(&h, true, req, &admin, &r);
	assert_int_equal(return_value(&r), 0);
	response_free(&r);
	free(req);
	expect_modes(m, AMTHI_CONTROL_CCM, AMTHI_PROVISIONING_POST);
	/* the network stack restarted after the reply: this LME session is gone */
	assert_true(h.reset);
	host_free(&h);

	/* a new session works, as admin */
	host_start(&h, m);
	assert_int_equal(general_get(&h, true, &admin), 200);
	host_free(&h);
	amtsim_free(m);
}

static void test_tls_without_certificate(void **state)
{
	struct amtsim *m = load("amt19-tls");
	char err[512];
	struct host h;

	(void)state;
	assert_int_equal(amtsim_check_tls(m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--tls-cert"));
	host_start(&h, m);
	assert_false(channel_open(&h, APF_PORT_HTTPS, 4096));
	assert_int_equal(h.refused, APF_OPEN_FAILURE_CONNECT_FAILED);
	host_free(&h);
	assert_int_equal(amtsim_serve_lms(m, 0, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "certificate"));
	amtsim_free(m);
}

static void test_unprovision_over_amthi(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "settle=150");
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	uint8_t reply[64], mode[4] = {0};
	struct amtsim_machine mm;
	struct host h;
	size_t n;

	(void)state;
	/* unprovisioned: SUCCESS, nothing changes */
	n = amthi(m, AMTHI_CMD_UNPROVISION, mode, 4, reply, sizeof(reply));
	assert_int_equal(n, 16);
	assert_int_equal(amthi_status(reply, n), AMTHI_STATUS_SUCCESS);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);

	host_start(&h, m);
	assert_int_equal(setup_admin(&h, false, LSA_PASS, realm_of(m)), 0);
	n = amthi(m, AMTHI_CMD_UNPROVISION, mode, 4, reply, sizeof(reply));
	assert_int_equal(n, 16);
	assert_int_equal(amthi_status(reply, n), AMTHI_STATUS_SUCCESS);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_IN);
	amtsim_get_machine(m, &mm);
	assert_false(mm.admin_set);
	assert_int_equal(general_get(&h, false, &admin), 401);
	/* "in": neither account works until it settles */
	assert_int_equal(general_get(&h, false, &local_account), 401);
	usleep(200 * 1000);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	assert_int_equal(general_get(&h, false, &local_account), 200);
	/* and it can be activated again */
	assert_int_equal(setup_admin(&h, false, LSA_PASS, realm_of(m)), 0);
	host_free(&h);
	expect_modes(m, AMTHI_CONTROL_CCM, AMTHI_PROVISIONING_POST);
	/* the request must carry its u32 */
	n = amthi(m, AMTHI_CMD_UNPROVISION, NULL, 0, reply, sizeof(reply));
	assert_int_equal(amthi_status(reply, n), AMTHI_STATUS_INVALID_MESSAGE_LENGTH);
	amtsim_free(m);
}

static void test_unprovision_variants(void **state)
{
	struct amtsim *acm = load_changed("amt16-ccm", "{\"amt\": {\"control_mode\": \"acm\"}}");
	uint8_t reply[64], mode[4] = {0};
	struct cursor c;
	uint32_t v = 0;
	size_t n;

	(void)state;
	n = amthi(acm, AMTHI_CMD_UNPROVISION, mode, 4, reply, sizeof(reply));
	assert_int_equal(n, 16);
	assert_int_equal(amthi_status(reply, n), AMTHI_STATUS_INVALID_AMT_MODE);
	expect_modes(acm, AMTHI_CONTROL_ACM, AMTHI_PROVISIONING_POST);
	amtsim_free(acm);

	/* the variant with a u32 after the status; settle 0 goes straight to "pre" */
	struct amtsim *m = load_changed(
	    "amt16-ccm", "{\"amt\": {\"unprovision_reply\": \"state\", \"settle_ms\": 0}}");
	n = amthi(m, AMTHI_CMD_UNPROVISION, mode, 4, reply, sizeof(reply));
	assert_int_equal(n, 20);
	assert_int_equal(amthi_status(reply, n), AMTHI_STATUS_SUCCESS);
	c = cursor_init(reply + 16, 4);
	assert_int_equal(cur_u32le(&c, &v), 0);
	assert_int_equal(v, AMTHI_PROVISIONING_PRE);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	amtsim_free(m);
}

static void test_unprovision_over_wsman(void **state)
{
	struct amtsim *m =
	    load_changed("amt16-ccm", "{\"amt\": {\"admin_password\": \"" ADMIN_PW "\"}}");
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	const struct creds lsa16 = {LSA_USER, "okwKb8lf6NKPL2q3vrKfmQjeIjf7E2Ri", NULL};
	struct response r;
	char *req;
	struct host h;

	(void)state;
	host_start(&h, m);
	assert_int_equal(general_get(&h, false, &lsa16), 401);
	assert_int_equal(general_get(&h, false, &admin), 200);
	req = method_request(URI_SETUP, "Unprovision");
	wsman(&h, false, req, &admin, &r);
	assert_int_equal(return_value(&r), 0);
	expect_text(&r, "Action", URI_SETUP "/UnprovisionResponse");
	response_free(&r);
	free(req);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_IN);
	assert_int_equal(general_get(&h, false, &admin), 401);
	host_free(&h);
	amtsim_free(m);
}

/* ---- tests: state across processes, LMS ---- */

static void test_state_file(void **state)
{
	char path[] = "/tmp/amtsim-state-XXXXXX", err[512];
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	struct amtsim *m = load_with("amt11-pre", "settle=100");
	json_object *o, *v;
	struct stat st;
	struct host h;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	unlink(path); /* a missing file is a fresh machine */
	assert_int_equal(amtsim_set_state_file(m, path, err, sizeof(err)), 0);
	host_start(&h, m);
	assert_int_equal(setup_admin(&h, false, LSA_PASS, realm_of(m)), 0);
	host_free(&h);
	amtsim_free(m);

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	o = json_object_from_file(path);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "control_mode", &v));
	assert_string_equal(json_object_get_string(v), "ccm");
	json_object_put(o);

	/* the next process finds the machine as it was left */
	m = load_with("amt11-pre", "settle=100");
	assert_int_equal(amtsim_set_state_file(m, path, err, sizeof(err)), 0);
	expect_modes(m, AMTHI_CONTROL_CCM, AMTHI_PROVISIONING_POST);
	host_start(&h, m);
	assert_int_equal(general_get(&h, false, &admin), 200);
	host_free(&h);
	{
		uint8_t reply[64], mode[4] = {0};

		(void)amthi(m, AMTHI_CMD_UNPROVISION, mode, 4, reply, sizeof(reply));
	}
	amtsim_free(m);

	/* still settling when read back at once, then "pre" */
	m = load("amt11-pre");
	assert_int_equal(amtsim_set_state_file(m, path, err, sizeof(err)), 0);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_IN);
	usleep(150 * 1000);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	amtsim_free(m);

	/* a broken file is refused with its name */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"control_mode\": \"x\"}", 21), 21);
	close(fd);
	m = load("amt11-pre");
	assert_int_equal(amtsim_set_state_file(m, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	amtsim_free(m);
	unlink(path);
}

/* One HTTP exchange with the LMS stand-in on 127.0.0.1:PORT (TLS when CA is given). */
static void lms_once(uint16_t port, bool tls, const char *body, const struct creds *cr,
                     const struct challenge *ch, struct response *r)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons(port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char req[16384], auth[1024] = "", a1[33], a2[33], resp[33], buf[1024];
	char *raw = malloc(65536);
	size_t n = 0;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_non_null(raw);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (cr && ch) {
		ha1_of(cr->user, ch->realm, cr->pass, a1);
		md5_hex("POST:/wsman", a2);
		snprintf(buf, sizeof(buf), "%s:%s:00000001:77:auth:%s", a1, ch->nonce, a2);
		md5_hex(buf, resp);
		snprintf(auth, sizeof(auth),
		         "Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", "
		         "uri=\"/wsman\", qop=auth, nc=00000001, cnonce=\"77\", response=\"%s\", "
		         "opaque=\"%s\"\r\n",
		         cr->user, ch->realm, ch->nonce, resp, ch->opaque);
	}
	snprintf(req, sizeof(req),
	         "POST /wsman HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n%s"
	         "Connection: close\r\n\r\n%s",
	         strlen(body), auth, body);
	if (tls) {
		char ca[256];

		snprintf(ca, sizeof(ca), "%s/ca.pem", cert_dir);
		ctx = SSL_CTX_new(TLS_client_method());
		assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		assert_int_equal(SSL_connect(ssl), 1);
		assert_int_equal(SSL_write(ssl, req, (int)strlen(req)), (int)strlen(req));
		for (int k; (k = SSL_read(ssl, raw + n, (int)(65535 - n))) > 0;)
			n += (size_t)k;
		SSL_free(ssl);
		SSL_CTX_free(ctx);
	} else {
		assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
		for (ssize_t k; (k = recv(fd, raw + n, 65535 - n, 0)) > 0;)
			n += (size_t)k;
	}
	close(fd);
	raw[n] = '\0';
	parse_response(raw, n, r);
	free(raw);
}

static int lms_get(uint16_t port, bool tls, const struct creds *cr)
{
	char *req = get_request(URI_GENERAL);
	struct response first, r;
	int status;

	lms_once(port, tls, req, NULL, NULL, &first);
	assert_int_equal(first.status, 401);
	lms_once(port, tls, req, cr, &first.ch, &r);
	status = r.status;
	response_free(&first);
	response_free(&r);
	free(req);
	return status;
}

static void test_lms_stand_in(void **state)
{
	struct amtsim *m = load("amt11-pre");
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	const struct creds wrong = {"admin", "wrong", NULL};
	char err[512];
	uint16_t port = 0;
	struct host h;

	(void)state;
	assert_int_equal(amtsim_serve_lms(m, 0, &port, err, sizeof(err)), 0);
	assert_true(port > 0);
	assert_int_equal(lms_get(port, false, &local_account), 200);
	host_start(&h, m);
	assert_int_equal(setup_admin(&h, false, LSA_PASS, realm_of(m)), 0);
	host_free(&h);
	assert_int_equal(lms_get(port, false, &admin), 200);
	assert_int_equal(lms_get(port, false, &wrong), 401);
	assert_int_equal(lms_get(port, false, &local_account), 401);
	amtsim_free(m);

	/* TLS on a TLS-enforcing machine */
	m = load("amt19-tls");
	use_test_certs(m);
	assert_int_equal(amtsim_serve_lms(m, 0, &port, err, sizeof(err)), 0);
	{
		const struct creds lsa = {LSA_USER, LSA19, NULL};

		assert_int_equal(lms_get(port, true, &lsa), 200);
	}
	amtsim_free(m);
}

/* ---- tests: faults ---- */

static void test_fault_channel_refused(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "channel-refused");
	struct amtsim *m4 = load_with("amt11-pre", "channel-refused=4");
	struct host h;

	(void)state;
	host_start(&h, m);
	assert_false(channel_open(&h, APF_PORT_HTTP, 4096));
	assert_int_equal(h.refused, APF_OPEN_FAILURE_CONNECT_FAILED);
	host_free(&h);
	host_start(&h, m4);
	assert_false(channel_open(&h, APF_PORT_HTTP, 4096));
	assert_int_equal(h.refused, APF_OPEN_FAILURE_RESOURCE_SHORTAGE);
	host_free(&h);
	amtsim_free(m);
	amtsim_free(m4);
}

static void test_fault_lme_disconnect(void **state)
{
	struct amtsim_stats st;
	struct response r;
	struct rig rig;

	(void)state;
	rig_start(&rig, "lme-disconnect@2");
	assert_int_equal(general_get(&rig.h, false, &local_account), 200);
	wsman(&rig.h, false, rig.req, &local_account, &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(rig.h.disconnect, APF_DISCONNECT_CONNECTION_LOST);
	response_free(&r);
	/* nothing after DISCONNECT: the connection reads as reset */
	while (!rig.h.reset)
		assert_true(host_step(&rig.h, WAIT_MS) >= 0);
	host_free(&rig.h);
	/* one-shot: a new session answers */
	host_start(&rig.h, rig.m);
	assert_int_equal(general_get(&rig.h, false, &local_account), 200);
	amtsim_get_stats(rig.m, &st);
	assert_int_equal(st.apf_disconnects, 1);
	assert_int_equal(st.wsman_authenticated, 3);
	rig_end(&rig);
}

static void test_fault_reset_during_setup(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "reset-during-setup");
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	struct amtsim_conn *a = NULL;
	uint8_t version, buf[64];
	uint32_t max;
	size_t len;
	bool more;
	char ha1[33], *req;
	struct response first, r;
	struct host h;

	(void)state;
	assert_int_equal(amtsim_connect(m, MEI_GUID_AMTHI, &a, &max, &version), 0);
	host_start(&h, m);
	ha1_of("admin", realm_of(m), ADMIN_PW, ha1);
	req = setup_request("2", ha1);
	http_once(&h, false, "POST", "/wsman", req, NULL, NULL, &first);
	http_once(&h, false, "POST", "/wsman", req, &local_account, &first.ch, &r);
	assert_int_equal(r.status, 0); /* no reply */
	assert_true(h.reset);
	/*
	 * a firmware reset: AMTHI too (the emulator resets one connection after the other, so the
	 * LME side may see it first)
	 */
	{
		struct pollfd p = {.fd = amtsim_conn_fd(a), .events = POLLIN};
		int r2;

		while ((r2 = amtsim_recv(a, buf, sizeof(buf), &len, &more)) == EAGAIN)
			assert_int_equal(poll(&p, 1, WAIT_MS), 1);
		assert_int_equal(r2, ENODEV);
	}
	amtsim_disconnect(a);
	host_free(&h);
	response_free(&first);
	free(req);
	/* applied before the reset */
	expect_modes(m, AMTHI_CONTROL_CCM, AMTHI_PROVISIONING_POST);
	host_start(&h, m);
	assert_int_equal(general_get(&h, false, &admin), 200);
	host_free(&h);
	amtsim_free(m);
}

static void test_fault_reset_before_setup(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "reset-before-setup");
	char ha1[33], *req;
	struct response first, r;
	struct host h;

	(void)state;
	host_start(&h, m);
	ha1_of("admin", realm_of(m), ADMIN_PW, ha1);
	req = setup_request("2", ha1);
	http_once(&h, false, "POST", "/wsman", req, NULL, NULL, &first);
	http_once(&h, false, "POST", "/wsman", req, &local_account, &first.ch, &r);
	assert_int_equal(r.status, 0);
	assert_true(h.reset);
	host_free(&h);
	response_free(&first);
	free(req);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	/* one-shot */
	host_start(&h, m);
	assert_int_equal(setup_admin(&h, false, LSA_PASS, realm_of(m)), 0);
	host_free(&h);
	expect_modes(m, AMTHI_CONTROL_CCM, AMTHI_PROVISIONING_POST);
	amtsim_free(m);
}

static void test_fault_setup_return(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "setup-return=6");
	struct host h;

	(void)state;
	host_start(&h, m);
	assert_int_equal(setup_admin(&h, false, LSA_PASS, realm_of(m)), 6);
	host_free(&h);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	amtsim_free(m);
}

static void test_fault_soap_fault(void **state)
{
	const char *const faults[] = {"soap-fault=Setup",
	                              "soap-fault=IPS_HostBasedSetupService.Get", NULL};
	struct amtsim *m = profile_load("amt11-pre", faults);
	struct response r;
	char ha1[33], *req;
	struct amtsim_stats st;
	struct host h;

	(void)state;
	host_start(&h, m);
	ha1_of("admin", realm_of(m), ADMIN_PW, ha1);
	req = setup_request("2", ha1);
	wsman(&h, false, req, &local_account, &r);
	expect_fault(&r, "InternalError");
	expect_text(&r, "RelatesTo", "11");
	response_free(&r);
	free(req);
	req = get_request(URI_HBS);
	wsman(&h, false, req, &local_account, &r);
	expect_fault(&r, "InternalError");
	response_free(&r);
	free(req);
	/* other Gets answer */
	assert_int_equal(general_get(&h, false, &local_account), 200);
	host_free(&h);
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	amtsim_get_stats(m, &st);
	assert_int_equal(st.wsman_faults, 2);
	amtsim_free(m);
}

static void test_fault_wrong_realm(void **state)
{
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	struct response r;
	struct rig rig;

	(void)state;
	rig_start(&rig, "wrong-realm");
	wsman(&rig.h, false, rig.req, &local_account, &r);
	assert_int_equal(r.status, 200);
	assert_string_not_equal(r.ch.realm, realm_of(rig.m));
	expect_text(&r, "DigestRealm", realm_of(rig.m));
	response_free(&r);
	/* the admin password hashed over AMT_GeneralSettings' realm, not the challenge's */
	assert_int_equal(setup_admin(&rig.h, false, LSA_PASS, realm_of(rig.m)), 0);
	wsman(&rig.h, false, rig.req, &admin, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ch.realm, realm_of(rig.m));
	response_free(&r);
	rig_end(&rig);

	/* hashed over the challenge's realm: admin never gets in */
	rig_start(&rig, "wrong-realm");
	wsman(&rig.h, false, rig.req, &local_account, &r);
	{
		char challenge_realm[160];

		snprintf(challenge_realm, sizeof(challenge_realm), "%s", r.ch.realm);
		response_free(&r);
		assert_int_equal(setup_admin(&rig.h, false, LSA_PASS, challenge_realm), 0);
	}
	assert_int_equal(general_get(&rig.h, false, &admin), 401);
	rig_end(&rig);
}

static void test_fault_wsman_latency(void **state)
{
	struct response r;
	struct rig rig;

	(void)state;
	rig_start(&rig, "wsman-latency=250");
	wsman(&rig.h, false, rig.req, &local_account, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.ms >= 250);
	response_free(&r);
	rig_end(&rig);
}

static void test_fault_session_ends_after_close(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "session-ends-after-close");
	struct amtsim_stats st;
	struct host h;

	(void)state;
	/* every session does it: each channel needs a handshake of its own */
	for (int i = 0; i < 2; i++) {
		host_start(&h, m);
		assert_true(channel_open(&h, APF_PORT_HTTP, 4096));
		channel_close(&h);
		assert_true(h.fw_closed); /* the answer to our close came first */
		while (!h.reset)
			assert_true(host_step(&h, WAIT_MS) >= 0);
		host_free(&h);
	}
	amtsim_get_stats(m, &st);
	assert_int_equal(st.connects[AMTSIM_CLIENT_LME], 2);
	assert_int_equal(st.apf_handshakes, 2);
	assert_int_equal(st.apf_channels, 2);
	amtsim_free(m);
}

static void test_fault_commit_restart_before(void **state)
{
	struct amtsim *m = load_with("amt19-tls", "commit-restart=before");
	const struct creds admin = {"admin", ADMIN_PW, NULL};
	char *req = method_request(URI_SETUP, "CommitChanges");
	struct response first, r;
	struct host h;

	(void)state;
	use_test_certs(m);
	host_start(&h, m);
	assert_int_equal(setup_admin(&h, true, LSA19, realm_of(m)), 0);
	http_once(&h, true, "POST", "/wsman", req, NULL, NULL, &first);
	http_once(&h, true, "POST", "/wsman", req, &admin, &first.ch, &r);
	assert_int_equal(r.status, 0); /* dropped before the reply */
	assert_true(h.reset);
	expect_modes(m, AMTHI_CONTROL_CCM, AMTHI_PROVISIONING_POST);
	response_free(&first);
	host_free(&h);
	free(req);
	amtsim_free(m);
}

static void test_fault_words(void **state)
{
	static const struct {
		const char *spec, *says;
	} bad[] = {
	    {"wrong-realm=1", "write it as wrong-realm"},
	    {"channel-refused@1", "channel-refused or channel-refused=N"},
	    {"channel-refused=0", "between 1 and"},
	    {"soap-fault=", "soap-fault=METHOD"},
	    {"soap-fault=Se tup", "soap-fault=METHOD"},
	    {"commit-restart=later", "after|before|none"},
	    {"lme-disconnect=2", "lme-disconnect@N"},
	    {"settle=9999999", "at most"},
	};
	struct amtsim *m = load("amt11-pre");
	char err[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(amtsim_fault(m, bad[i].spec, err, sizeof(err)), -1);
		if (!strstr(err, bad[i].says))
			fail_msg("%s: got \"%s\"", bad[i].spec, err);
	}
	amtsim_free(m);
}

/* ---- tests: profile keys ---- */

static void test_profile_tls_files(void **state)
{
	char tmp[256], err[512], changes[1024];
	struct amtsim *m;
	struct host h;

	(void)state;
	/* relative paths are the profile's directory's */
	m = try_changed("amt19-tls",
	                "{\"amt\": {\"tls_cert\": \"amt.pem\", \"tls_key\": \"amt.key\"}}",
	                cert_dir, tmp, sizeof(tmp), err, sizeof(err));
	unlink(tmp);
	if (!m)
		fail_msg("%s", err);
	assert_int_equal(amtsim_check_tls(m, err, sizeof(err)), 0);
	host_start(&h, m);
	{
		const struct creds lsa = {LSA_USER, LSA19, NULL};

		assert_int_equal(general_get(&h, true, &lsa), 200);
	}
	host_free(&h);
	amtsim_free(m);

	snprintf(changes, sizeof(changes),
	         "{\"amt\": {\"tls_cert\": \"%s/none.pem\", \"tls_key\": \"%s/amt.key\"}}",
	         cert_dir, cert_dir);
	m = try_changed("amt19-tls", changes, NULL, tmp, sizeof(tmp), err, sizeof(err));
	unlink(tmp);
	assert_null(m);
	assert_non_null(strstr(err, "none.pem: No such file"));

	/* the key file must be PEM */
	snprintf(changes, sizeof(changes),
	         "{\"amt\": {\"tls_cert\": \"%s/amt.pem\", \"tls_key\": \"%s\"}}", cert_dir,
	         AMTSIM_CERT_SCRIPT);
	m = try_changed("amt19-tls", changes, NULL, tmp, sizeof(tmp), err, sizeof(err));
	unlink(tmp);
	assert_null(m);
	assert_non_null(strstr(err, "not a PEM file"));
}

static void test_profile_lme_keys(void **state)
{
	struct amtsim *m = load_changed(
	    "amt11-pre", "{\"clients\": {\"lme\": {\"version_first\": true, "
	                 "\"session_ends_after_close\": true}}, \"amt\": {\"digest_realm\": "
	                 "\"Digest:00112233445566778899AABBCCDDEEFF\"}}");
	struct host h;

	(void)state;
	host_connect(&h, m);
	/* the firmware speaks first */
	assert_int_equal(host_step(&h, WAIT_MS), APF_PROTOCOL_VERSION);
	handshake(&h);
	assert_string_equal(realm_of(m), "Digest:00112233445566778899AABBCCDDEEFF");
	assert_true(channel_open(&h, APF_PORT_HTTP, 4096));
	channel_close(&h);
	while (!h.reset)
		assert_true(host_step(&h, WAIT_MS) >= 0);
	host_free(&h);
	amtsim_free(m);
}

static uint32_t wired_ipv4(struct amtsim *m)
{
	uint8_t reply[64], index[4] = {0};
	struct cursor c;
	uint32_t enabled = 0, ipv4 = 0;
	size_t n = amthi(m, AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, index, 4, reply, sizeof(reply));

	assert_int_equal(amthi_status(reply, n), AMTHI_STATUS_SUCCESS);
	c = cursor_init(reply + 16, n - 16);
	assert_int_equal(cur_u32le(&c, &enabled), 0);
	assert_int_equal(cur_u32le(&c, &ipv4), 0);
	return ipv4;
}

static void enable_amt(struct amtsim *m)
{
	const uint8_t req[5] = {0x05, 0x03, 0x53, 0x10, 1};
	struct amtsim_conn *c = NULL;
	uint8_t version, reply[16];
	uint32_t max;
	size_t len;
	bool more;

	assert_int_equal(amtsim_connect(m, MEI_GUID_WATCHDOG, &c, &max, &version), 0);
	assert_int_equal(amtsim_send(c, req, sizeof(req)), 0);
	assert_int_equal(amtsim_recv(c, reply, sizeof(reply), &len, &more), 0);
	assert_int_equal(len, 8);
	assert_int_equal(reply[4], 0); /* status SUCCESS */
	amtsim_disconnect(c);
}

/* Enabled AMT takes its DHCP lease a little later; the enabled state outlives the process. */
static void test_lease_and_operational_state(void **state)
{
	char path[] = "/tmp/amtsim-state-XXXXXX", err[512];
	const char *changes = "{\"amt\": {\"wired\": {\"lease_after_ms\": 80}}}";
	struct amtsim *m = load_changed("amt-disabled", changes);
	struct amtsim_conn *c = NULL;
	uint32_t max;
	uint8_t version;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	assert_int_equal(amtsim_set_state_file(m, path, err, sizeof(err)), 0);
	assert_int_equal(amtsim_connect(m, MEI_GUID_AMTHI, &c, &max, &version), ENOTTY);
	enable_amt(m);
	assert_int_equal(wired_ipv4(m), 0);
	usleep(120 * 1000);
	assert_int_equal(wired_ipv4(m), 0xC000023D); /* 192.0.2.61 */
	amtsim_free(m);

	m = load_changed("amt-disabled", changes);
	assert_int_equal(amtsim_set_state_file(m, path, err, sizeof(err)), 0);
	assert_int_equal(amtsim_connect(m, MEI_GUID_AMTHI, &c, &max, &version), 0);
	amtsim_disconnect(c);
	{
		uint8_t reply[8];
		size_t len;
		bool more;

		/* the watchdog says so too: 0x83, operational */
		assert_int_equal(amtsim_connect(m, MEI_GUID_WATCHDOG, &c, &max, &version), 0);
		assert_int_equal(amtsim_send(c, WATCHDOG_IS_CHANGE_TO_AMT_ENABLED, 4), 0);
		assert_int_equal(amtsim_recv(c, reply, sizeof(reply), &len, &more), 0);
		assert_int_equal(len, 1);
		assert_int_equal(reply[0], 0x83);
		amtsim_disconnect(c);
	}
	expect_modes(m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	amtsim_free(m);
	unlink(path);
}

/* ---- tests: robustness ---- */

/* The host goes away while the firmware is still sending: no use after free, no hang. */
static void test_disconnect_while_sending(void **state)
{
	struct amtsim *m = load_with("amt11-pre", "wsman-latency=5");

	(void)state;
	for (int round = 0; round < 20; round++) {
		char *req = get_request(URI_GENERAL);
		struct host h;
		char text[2048];

		host_start(&h, m);
		assert_true(channel_open(&h, APF_PORT_HTTP, 256 + 64 * (uint32_t)round));
		snprintf(text, sizeof(text),
		         "POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
		         strlen(req), req);
		assert_true(channel_write(&h, text, strlen(text)));
		if (round % 2)
			(void)host_step(&h, round); /* sometimes take a little of the reply */
		host_free(&h);
		free(req);
	}
	amtsim_free(m);
}

static void test_small_windows(void **state)
{
	struct response first, r;
	struct rig rig;

	(void)state;
	rig_start(&rig, NULL);
	http_once(&rig.h, false, "POST", "/wsman", rig.req, NULL, NULL, &first);
	/* a tiny window: the 2 KiB reply comes in many window-sized pieces */
	{
		char hdr[16384], auth[1024], a1[33], a2[33], resp[33], buf[1024];
		struct stream s;
		size_t n;
		char *raw;

		ha1_of(LSA_USER, first.ch.realm, LSA_PASS, a1);
		md5_hex("POST:/wsman", a2);
		snprintf(buf, sizeof(buf), "%s:%s:00000001:1:auth:%s", a1, first.ch.nonce, a2);
		md5_hex(buf, resp);
		snprintf(auth, sizeof(auth),
		         "Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", "
		         "uri=\"/wsman\", qop=auth, nc=00000001, cnonce=\"1\", response=\"%s\", "
		         "opaque=\"%s\"\r\n",
		         LSA_USER, first.ch.realm, first.ch.nonce, resp, first.ch.opaque);
		snprintf(hdr, sizeof(hdr),
		         "POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n%s"
		         "Connection: close\r\n\r\n%s",
		         strlen(rig.req), auth, rig.req);
		assert_true(channel_open(&rig.h, APF_PORT_HTTP, 64));
		assert_true(stream_open(&s, &rig.h, false));
		assert_true(stream_write(&s, hdr, strlen(hdr)));
		raw = stream_read(&s, &n);
		parse_response(raw, n, &r);
		free(raw);
		channel_close(&rig.h);
	}
	assert_int_equal(r.status, 200);
	expect_text(&r, "DigestRealm", realm_of(rig.m));
	response_free(&first);
	response_free(&r);
	rig_end(&rig);
}

/* The counters file has the LME and WS-Man keys the integration runner reads. */
static void test_stats_keys(void **state)
{
	struct amtsim *m = load("amt11-pre");
	char path[] = "/tmp/amtsim-stats-XXXXXX";
	json_object *root, *v;
	struct host h;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	host_start(&h, m);
	assert_int_equal(setup_admin(&h, false, LSA_PASS, realm_of(m)), 0);
	host_free(&h);
	assert_int_equal(amtsim_write_stats(m, path), 0);
	root = json_object_from_file(path);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "wsman", &v));
	assert_true(json_object_object_get_ex(v, "Setup", &v));
	assert_int_equal(json_object_get_int(v), 1);
	assert_true(json_object_object_get_ex(root, "clients", &v));
	assert_true(json_object_object_get_ex(v, "lme", &v));
	assert_true(json_object_object_get_ex(v, "channels", &v));
	assert_int_equal(json_object_get_int(v), 2); /* the 401 and the answer */
	assert_true(json_object_object_get_ex(root, "machine", &v));
	assert_true(json_object_object_get_ex(v, "control_mode", &v));
	assert_string_equal(json_object_get_string(v), "ccm");
	json_object_put(root);
	unlink(path);
	amtsim_free(m);
}

static int make_certs(void **state)
{
	const char *const argv[] = {"sh", AMTSIM_CERT_SCRIPT, cert_dir, NULL};

	(void)state;
	if (!mkdtemp(cert_dir))
		return -1;
	return fixture_run(argv);
}

static int remove_certs(void **state)
{
	(void)state;
	return fixture_remove_tree(cert_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_and_ports),
	    cmocka_unit_test(test_get_general_settings),
	    cmocka_unit_test(test_digest_refusals),
	    cmocka_unit_test(test_unknown_resource_and_method),
	    cmocka_unit_test(test_setup_to_ccm),
	    cmocka_unit_test(test_setup_parameters),
	    cmocka_unit_test(test_tls_setup_then_commit),
	    cmocka_unit_test(test_tls_without_certificate),
	    cmocka_unit_test(test_unprovision_over_amthi),
	    cmocka_unit_test(test_unprovision_variants),
	    cmocka_unit_test(test_unprovision_over_wsman),
	    cmocka_unit_test(test_state_file),
	    cmocka_unit_test(test_lms_stand_in),
	    cmocka_unit_test(test_fault_channel_refused),
	    cmocka_unit_test(test_fault_lme_disconnect),
	    cmocka_unit_test(test_fault_reset_during_setup),
	    cmocka_unit_test(test_fault_reset_before_setup),
	    cmocka_unit_test(test_fault_setup_return),
	    cmocka_unit_test(test_fault_soap_fault),
	    cmocka_unit_test(test_fault_wrong_realm),
	    cmocka_unit_test(test_fault_wsman_latency),
	    cmocka_unit_test(test_fault_session_ends_after_close),
	    cmocka_unit_test(test_fault_commit_restart_before),
	    cmocka_unit_test(test_fault_words),
	    cmocka_unit_test(test_profile_tls_files),
	    cmocka_unit_test(test_profile_lme_keys),
	    cmocka_unit_test(test_lease_and_operational_state),
	    cmocka_unit_test(test_disconnect_while_sending),
	    cmocka_unit_test(test_small_windows),
	    cmocka_unit_test(test_stats_keys),
	};
	return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
