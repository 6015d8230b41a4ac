/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The APF session as firmware drives it: the handshake (apf_open), then one bridged channel
 * (apf_bridge_listen and a local client), fed by a fake LME client on the "unix:" transport that
 * sends the input's frames in order and then ends its side (a firmware reset once they are
 * consumed: no input waits for a timeout it could not end).
 *
 * Input: byte 0 picks the LME client's max_msg_length, byte 1 the receive window the host offers;
 * then frames, each a big-endian u16 length and that many bytes (the last one may be cut short).
 * Reconnects (the bridge starts a dead session over) are answered ENOTTY.
 *
 * Properties: every message the host sends is well-formed APF within max_msg_length; apf_open
 * returns 0 or a negative mei_err with a one-line reason; the bridge's counters add up; nothing
 * hangs (each wait is bounded by the short receive timeout used here) and nothing leaks.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "fuzz.h"
#include "mei.h"

#define RECV_MS      30
#define HOST_MSG_MAX 65536

static const uint32_t max_lengths[8] = {8192, 4096, 512, 64, 10, 9, 100, 2048};
static const uint32_t windows[4] = {4096, 1, 100, 65536};

static char lme_path[108], bridge_dir[128];
static int listen_fd = -1;

struct fw {
	const uint8_t *frames;
	size_t len;
	uint32_t max_len;
	int stop_fd;
};

static void remove_tree(void)
{
	if (listen_fd >= 0)
		close(listen_fd);
	unlink(lme_path);
	rmdir(bridge_dir);
	rmdir(fuzz_scratch_dir());
}

static void setup(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(lme_path, sizeof(lme_path), "%s/lme", fuzz_scratch_dir());
	snprintf(bridge_dir, sizeof(bridge_dir), "%s/bridge", fuzz_scratch_dir());
	if (mkdir(bridge_dir, 0700) < 0 && errno != EEXIST)
		abort();
	memcpy(sa.sun_path, lme_path, strlen(lme_path) + 1);
	listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(listen_fd, 8) < 0) {
		perror(lme_path);
		abort();
	}
	if (atexit(remove_tree) != 0)
		abort();
}

/* poll that resumes after signals (libFuzzer's -timeout alarm interrupts it) with the time left */
static int poll_for(struct pollfd *p, nfds_t n, int timeout_ms)
{
	struct timespec start, now;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int left = timeout_ms;

		if (timeout_ms >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			left = timeout_ms - (int)((now.tv_sec - start.tv_sec) * 1000 +
			                          (now.tv_nsec - start.tv_nsec) / 1000000);
			if (left < 0)
				left = 0;
		}
		r = poll(p, n, left);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

static void put_u32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* A message from the host: well-formed APF, never longer than the client's limit. */
static void check_host_message(const struct fw *f, const uint8_t *msg, size_t len)
{
	struct apf_msg m;

	FUZZ_CHECK(len <= f->max_len);
	FUZZ_CHECK(apf_decode(msg, len, &m) == 0);
}

/* The next frame of the input: a u16 length and its bytes. False when none is left. */
static bool next_frame(const uint8_t **p, const uint8_t *end, const uint8_t **frame, size_t *len)
{
	size_t n;

	if (end - *p < 2)
		return false;
	n = (size_t)(*p)[0] << 8 | (*p)[1];
	*p += 2;
	if (n > (size_t)(end - *p))
		n = (size_t)(end - *p);
	*frame = *p;
	*len = n;
	*p += n;
	return true;
}

/* One connection of the host: the connect reply, the frames, end of our side, then whatever
 * the host still says until it closes. */
static void serve(const struct fw *f, int c, bool first)
{
	uint8_t *buf = fuzz_alloc(HOST_MSG_MAX), reply[12] = {0};
	const uint8_t *p = f->frames, *end = f->frames + f->len, *frame = NULL;
	size_t flen = 0;
	bool have = false, sent_eof = false;
	struct pollfd pf = {.fd = c, .events = POLLIN};

	/* the GUID, which the host sends as soon as it is connected */
	if (poll_for(&pf, 1, 1000) <= 0 || recv(c, buf, HOST_MSG_MAX, 0) != 16) {
		free(buf);
		return;
	}
	put_u32le(reply, first ? 0 : ENOTTY);
	put_u32le(reply + 4, f->max_len);
	reply[8] = 4;
	if (send(c, reply, sizeof(reply), MSG_NOSIGNAL) != sizeof(reply) || !first) {
		free(buf);
		return;
	}
	for (;;) {
		ssize_t n;

		if (!have && !sent_eof && !(have = next_frame(&p, end, &frame, &flen))) {
			shutdown(c, SHUT_WR);
			sent_eof = true;
		}
		pf.events = (short)(POLLIN | (have ? POLLOUT : 0));
		if (poll_for(&pf, 1, 5000) <= 0)
			break; /* the host went quiet without closing: its own bug would show */
		if (pf.revents & POLLIN) {
			n = recv(c, buf, HOST_MSG_MAX, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (n > 0)
				check_host_message(f, buf, (size_t)n);
			continue;
		}
		if (have && (pf.revents & POLLOUT)) {
			/* an empty message would read as the end of the connection: skip it */
			n = flen ? send(c, frame, flen, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
			if (n < 0 && errno != EAGAIN && errno != EINTR && errno != EMSGSIZE)
				break;
			if (n >= 0 || errno == EMSGSIZE)
				have = false;
			continue;
		}
		if (pf.revents & (POLLERR | POLLHUP))
			break;
	}
	free(buf);
}

static void *fw_main(void *arg)
{
	const struct fw *f = arg;
	bool first = true;

	for (;;) {
		struct pollfd p[2] = {{.fd = listen_fd, .events = POLLIN},
		                      {.fd = f->stop_fd, .events = POLLIN}};
		int c;

		if (poll_for(p, 2, -1) < 0)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve(f, c, first);
		first = false;
		close(c);
	}
	return NULL;
}

/* A local client of the bridge: a request, then what comes back until the bridge closes. */
static void local_client(const char *path)
{
	static const char request[] = "POST /wsman HTTP/1.1\r\nHost: 127.0.0.1:16992\r\n"
	                              "Content-Length: 0\r\n\r\n";
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char buf[4096];

	if (c < 0 || strlen(path) >= sizeof(sa.sun_path))
		abort();
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    send(c, request, sizeof(request) - 1, MSG_NOSIGNAL) > 0) {
		for (;;) {
			struct pollfd p = {.fd = c, .events = POLLIN};

			/* the bridge ends every channel within a few receive timeouts */
			FUZZ_CHECK(poll_for(&p, 1, 5000) == 1);
			if (recv(c, buf, sizeof(buf), 0) <= 0)
				break;
		}
	}
	close(c);
}

static void bridge(struct apf_session *s)
{
	struct apf_bridge_status st;
	char path[108];
	int r = apf_bridge_listen(s, APF_PORT_HTTP, bridge_dir, path, sizeof(path));

	FUZZ_CHECK(r <= 0);
	if (r < 0)
		return;
	local_client(path);
	apf_bridge_stop(s);
	apf_bridge_status(s, &st);
	FUZZ_CHECK(!st.listening);
	FUZZ_CHECK(st.completed <= st.accepted && st.accepted <= 1);
	FUZZ_CHECK(st.channels <= st.accepted && st.refused + st.failed <= st.completed);
	FUZZ_CHECK(fuzz_terminated(st.last_error, sizeof(st.last_error)));
	FUZZ_CHECK(st.completed == 0 || (st.last_result == 0) == (st.last_error[0] == '\0'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mei_opts o;
	struct apf_session *s = NULL;
	struct fw f;
	pthread_t t;
	char device[128], err[256];
	uint64_t one = 1;
	int r;

	if (size < 2)
		return 0;
	if (listen_fd < 0)
		setup();
	f.max_len = max_lengths[data[0] & 7];
	f.frames = data + 2;
	f.len = size - 2;
	f.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (f.stop_fd < 0 || pthread_create(&t, NULL, fw_main, &f) != 0)
		abort();

	mei_opts_default(&o);
	o.ready_ms = 0;
	o.recv_ms = RECV_MS;
	o.busy_retries = 0;
	snprintf(device, sizeof(device), "unix:%s", lme_path);
	r = apf_open_err(device, &o, &s, err, sizeof(err));
	FUZZ_CHECK(r <= 0 && mei_strerror(r) != NULL);
	FUZZ_CHECK(fuzz_terminated(err, sizeof(err)));
	if (r == 0) {
		FUZZ_CHECK(s != NULL);
		FUZZ_CHECK(!apf_tls_enforced(s) || apf_wsman_port(s) == APF_PORT_HTTPS);
		apf_set_window(s, windows[data[1] & 3]);
		bridge(s);
		FUZZ_CHECK(strlen(apf_last_error(s)) < 4096);
		apf_close(s);
	} else {
		FUZZ_CHECK(s == NULL && err[0] != '\0' && fuzz_one_line(err));
	}

	if (write(f.stop_fd, &one, sizeof(one)) != sizeof(one))
		abort();
	pthread_join(t, NULL);
	close(f.stop_fd);
	return 0;
}
