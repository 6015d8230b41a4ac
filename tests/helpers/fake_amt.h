/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fake AMT for the host side's tests: a Unix SOCK_SEQPACKET server that speaks the emulator's
 * "unix:" device convention (tests/amtsim/amtsim.h) and plays the emulator's APF firmware side
 * (tests/amtsim/apf_fw.c, which the test executable compiles in) behind the LME client; any
 * other client is refused with ENOTTY. One thread serves one connection at a time; closing it
 * is a firmware reset as the host sees it. The test says what is behind the forwarded ports.
 *
 * Header-only, like tests/fixture.h, so that the tests of mei/ and provision/ can share it
 * without a library of their own.
 */
#ifndef AMT_ENLIST_TESTS_HELPERS_FAKE_AMT_H
#define AMT_ENLIST_TESTS_HELPERS_FAKE_AMT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../mei/mei.h"
#include "../amtsim/amtsim.h"
#include "../amtsim/apf_fw.h"

/*
 * A connected stream socket whose other end is the service behind PORT, or -1 to refuse the
 * channel (apf_fw.h's open_service). Called from the serving thread with the fake's lock held,
 * so what the test keeps about its services needs no lock of its own.
 */
typedef int (*fake_amt_service_fn)(void *ctx, uint16_t port);

struct fake_amt {
	char path[108];
	char device[128]; /* "unix:PATH", for apf_open */
	int listen_fd;
	int stop_fd;
	pthread_t thread;
	struct apf_fw_config cfg;
	fake_amt_service_fn open_service;
	void *service_ctx;

	pthread_mutex_t lock;
	int conn;                  /* the connection being served */
	unsigned sessions;         /* LME connections served to their end */
	struct apf_fw_stats total; /* the firmware's counters over all sessions */
};

static inline int fake_amt_to_host(void *ctx, const uint8_t *msg, size_t len)
{
	struct fake_amt *a = ctx;
	ssize_t n = send(a->conn, msg, len, MSG_NOSIGNAL);

	/* A host that has gone loses the message, as it would on a reset; what it sent before
	 * going is still read. */
	if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
		return 0;
	return n == (ssize_t)len ? 0 : -1;
}

static inline int fake_amt_open_service(void *ctx, uint16_t port)
{
	struct fake_amt *a = ctx;
	int fd;

	pthread_mutex_lock(&a->lock);
	fd = a->open_service ? a->open_service(a->service_ctx, port) : -1;
	pthread_mutex_unlock(&a->lock);
	return fd;
}

/* Sums, except the largest frames and the ports forwarded, which are the most of any session. */
static inline void fake_amt_add_stats(struct apf_fw_stats *t, const struct apf_fw_stats *s)
{
	t->host_messages += s->host_messages;
	t->channels_opened += s->channels_opened;
	t->channels_refused += s->channels_refused;
	t->channels_closed += s->channels_closed;
	t->host_data_frames += s->host_data_frames;
	t->host_data_bytes += s->host_data_bytes;
	t->fw_data_frames += s->fw_data_frames;
	t->fw_data_bytes += s->fw_data_bytes;
	t->window_adjusts_received += s->window_adjusts_received;
	t->window_adjusts_sent += s->window_adjusts_sent;
	t->protocol_errors += s->protocol_errors;
	if (s->host_data_max > t->host_data_max)
		t->host_data_max = s->host_data_max;
	if (s->fw_data_max > t->fw_data_max)
		t->fw_data_max = s->fw_data_max;
	if (s->ports_forwarded > t->ports_forwarded)
		t->ports_forwarded = s->ports_forwarded;
	if (s->protocol_errors)
		memcpy(t->last_error, s->last_error, sizeof(t->last_error));
}

static inline void fake_amt_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* One connection: the unix device's connect exchange, then one SEQPACKET message per MEI one. */
static inline void fake_amt_serve(struct fake_amt *a, int conn)
{
	const uint32_t max_msg_length = a->cfg.max_msg_length;
	struct apf_fw_ops ops = {
	    .ctx = a, .send_to_host = fake_amt_to_host, .open_service = fake_amt_open_service};
	uint8_t guid[17], reply[AMTSIM_UNIX_CONNECT_REPLY_LEN] = {0};
	ssize_t n = recv(conn, guid, sizeof(guid), 0);
	bool lme = n == 16 && memcmp(guid, MEI_GUID_LME, 16) == 0;
	struct apf_fw_stats st;
	struct apf_fw *fw;
	uint8_t *buf;

	fake_amt_put_le32(reply, lme ? 0 : ENOTTY);
	fake_amt_put_le32(reply + 4, max_msg_length);
	reply[8] = 4;
	if (send(conn, reply, sizeof(reply), MSG_NOSIGNAL) != (ssize_t)sizeof(reply) || !lme)
		return;
	a->conn = conn;
	fw = apf_fw_new(&a->cfg, &ops);
	buf = malloc(max_msg_length + 1);
	if (!fw || !buf || apf_fw_start(fw) != 0)
		goto out;
	for (;;) {
		struct pollfd p[2] = {{.fd = a->stop_fd, .events = POLLIN},
		                      {.fd = conn, .events = POLLIN}};

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (!p[1].revents && p[0].revents)
			break; /* stopped, after what the host had sent was taken */
		if (!p[1].revents)
			continue;
		n = recv(conn, buf, max_msg_length + 1, 0);
		/* The host closing with our messages unread reports ECONNRESET once, ahead of what
		 * it sent before closing. */
		if (n < 0 && errno == ECONNRESET)
			continue;
		if (n <= 0 || apf_fw_input(fw, buf, (size_t)n) != 0)
			break;
	}
	apf_fw_get_stats(fw, &st);
	pthread_mutex_lock(&a->lock);
	fake_amt_add_stats(&a->total, &st);
	a->sessions++;
	pthread_mutex_unlock(&a->lock);
out:
	apf_fw_free(fw); /* the pump stops before the connection goes */
	free(buf);
}

static inline void *fake_amt_main(void *arg)
{
	struct fake_amt *a = arg;

	for (;;) {
		struct pollfd p[2] = {{.fd = a->stop_fd, .events = POLLIN},
		                      {.fd = a->listen_fd, .events = POLLIN}};
		int conn;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (!p[1].revents)
			continue;
		conn = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0)
			continue;
		fake_amt_serve(a, conn);
		close(conn); /* a firmware reset, as the host sees it */
	}
	return NULL;
}

/*
 * Listen on /tmp/NAME-PID-N.sock and serve. CFG may be NULL (apf_fw's defaults; its
 * max_msg_length is what the connect reply announces). OPEN_SERVICE may be NULL: every channel
 * is refused.
 */
static inline void fake_amt_start(struct fake_amt *a, const char *name,
                                  const struct apf_fw_config *cfg, fake_amt_service_fn open_service,
                                  void *service_ctx)
{
	static unsigned counter;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(a, 0, sizeof(*a));
	if (cfg)
		a->cfg = *cfg;
	if (!a->cfg.max_msg_length)
		a->cfg.max_msg_length = APF_FW_DEFAULT_MAX_MSG_LENGTH;
	a->open_service = open_service;
	a->service_ctx = service_ctx;
	snprintf(a->path, sizeof(a->path), "/tmp/%s-%d-%u.sock", name, (int)getpid(), counter++);
	snprintf(a->device, sizeof(a->device), "unix:%s", a->path);
	unlink(a->path);
	memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
	pthread_mutex_init(&a->lock, NULL);
	a->stop_fd = eventfd(0, EFD_CLOEXEC);
	a->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(a->stop_fd >= 0 && a->listen_fd >= 0);
	assert_int_equal(bind(a->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(a->listen_fd, 8), 0);
	assert_int_equal(pthread_create(&a->thread, NULL, fake_amt_main, a), 0);
}

/* Stop serving (a session in progress ends as a reset would) and remove the socket; the
 * counters (sessions, total) stay readable. */
static inline void fake_amt_stop(struct fake_amt *a)
{
	uint64_t one = 1;

	assert_int_equal(write(a->stop_fd, &one, sizeof(one)), sizeof(one));
	pthread_join(a->thread, NULL);
	close(a->listen_fd);
	close(a->stop_fd);
	unlink(a->path);
	pthread_mutex_destroy(&a->lock);
}

/* The host's options for a fake AMT: quick to give up, no retries when busy. */
static inline void fake_amt_host_opts(struct mei_opts *o)
{
	mei_opts_default(o);
	o->ready_ms = 1000;
	o->recv_ms = 2000;
	o->busy_retries = 0;
}

/* An APF session with the fake AMT; the test fails when it cannot be opened. */
static inline struct apf_session *fake_amt_session(const struct fake_amt *a)
{
	struct apf_session *s = NULL;
	struct mei_opts o;
	char err[256];
	int r;

	fake_amt_host_opts(&o);
	r = apf_open_err(a->device, &o, &s, err, sizeof(err));
	if (r != 0)
		fail_msg("apf_open: %s: %s", mei_strerror(r), err);
	return s;
}

#endif
