/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "listen" front end: the core served on a Unix SOCK_SEQPACKET socket, the agent's
 * "unix:PATH" device. One socket connection is one MEI client connection (the convention at
 * the top of amtsim.h), served by a thread of its own. SIGTERM or SIGINT ends the server: open
 * connections are shut down, the counters written and the socket file removed. Tests start and
 * stop the same server without signals (amtsim_unix_server_start/stop).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "amtsim.h"
#include "wire.h"

#define GUID_LEN    16u
#define REPLY_CHUNK 4096u

struct server;

struct session {
	struct server *srv;
	struct session *next;
	pthread_t thread;
	int fd;
	bool done;
};

struct server {
	struct amtsim *m;
	const char *stats_path;
	pthread_mutex_t lock; /* sessions, and one stats writer at a time */
	struct session *sessions;
};

static void write_stats(struct server *srv)
{
	if (!srv->stats_path)
		return;
	pthread_mutex_lock(&srv->lock);
	if (amtsim_write_stats(srv->m, srv->stats_path) < 0)
		fprintf(stderr, "amtsim: %s: cannot write the counters: %s\n", srv->stats_path,
			strerror(errno));
	pthread_mutex_unlock(&srv->lock);
}

static int send_connect_reply(int fd, int err, uint32_t max_msg_length, uint8_t version)
{
	uint8_t b[AMTSIM_UNIX_CONNECT_REPLY_LEN];
	struct wbuf w = wbuf_init(b, sizeof(b));

	put_u32le(&w, (uint32_t)err);
	put_u32le(&w, err ? 0 : max_msg_length);
	put_u8(&w, err ? 0 : version);
	put_zeros(&w, 3);
	return send(fd, b, w.len, MSG_NOSIGNAL) == (ssize_t)w.len ? 0 : -1;
}

/* The client's first message, its GUID; then the connect's outcome. NULL when refused. */
static struct amtsim_conn *session_connect(struct session *s, uint32_t *max_msg_length)
{
	uint8_t guid[GUID_LEN + 1];
	struct amtsim_conn *c = NULL;
	uint8_t version = 0;
	ssize_t n;
	int r;

	do
		n = recv(s->fd, guid, sizeof(guid), 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return NULL;
	if (n != GUID_LEN)
		r = EINVAL;
	else
		r = amtsim_connect(s->srv->m, guid, &c, max_msg_length, &version);
	if (send_connect_reply(s->fd, r, *max_msg_length, version) < 0 && c) {
		amtsim_disconnect(c);
		c = NULL;
	}
	return c;
}

/* Forward every queued reply as one packet each. 0, or -1 when the session is over. */
static int forward_replies(struct session *s, struct amtsim_conn *c, uint8_t **buf, size_t *cap)
{
	for (;;) {
		size_t len = 0;
		bool more = true;

		while (more) {
			size_t got;
			int r;

			if (*cap - len < REPLY_CHUNK) {
				uint8_t *b = realloc(*buf, *cap * 2);

				if (!b)
					return -1;
				*buf = b;
				*cap *= 2;
			}
			r = amtsim_recv(c, *buf + len, REPLY_CHUNK, &got, &more);
			if (r == EAGAIN)
				return 0;
			if (r != 0)
				return -1; /* ENODEV: a firmware reset closes the socket */
			len += got;
		}
		if (send(s->fd, *buf, len, MSG_NOSIGNAL) != (ssize_t)len)
			return -1;
	}
}

/* One message from the host. 0, or -1 when the session is over. */
static int forward_request(struct session *s, struct amtsim_conn *c, uint8_t *buf, size_t cap)
{
	ssize_t n;
	int r;

	do
		n = recv(s->fd, buf, cap, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	if ((size_t)n > cap) {
		/* The kernel would have refused the write with EFBIG; nothing reaches the ME. */
		fprintf(stderr, "amtsim: a %zu-byte message is over max_msg_length %zu: dropped\n",
			(size_t)n, cap);
		return 0;
	}
	r = amtsim_send(c, buf, (size_t)n);
	return r == 0 || r == EFBIG ? 0 : -1;
}

static void *session_main(void *arg)
{
	struct session *s = arg;
	uint32_t max_msg_length = 0;
	struct amtsim_conn *c = session_connect(s, &max_msg_length);
	size_t out_cap = 2 * (size_t)REPLY_CHUNK;
	uint8_t *in = c ? malloc(max_msg_length) : NULL;
	uint8_t *out = c ? malloc(out_cap) : NULL;

	while (c && in && out) {
		struct pollfd pfd[2] = {
		    {.fd = s->fd, .events = POLLIN},
		    {.fd = amtsim_conn_fd(c), .events = POLLIN},
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents && forward_replies(s, c, &out, &out_cap) < 0)
			break;
		if (pfd[0].revents && forward_request(s, c, in, max_msg_length) < 0)
			break;
	}
	free(in);
	free(out);
	amtsim_disconnect(c);
	pthread_mutex_lock(&s->srv->lock);
	close(s->fd);
	s->fd = -1; /* under the lock: reap_sessions must not shut down a reused descriptor */
	pthread_mutex_unlock(&s->srv->lock);
	write_stats(s->srv);

	pthread_mutex_lock(&s->srv->lock);
	s->done = true;
	pthread_mutex_unlock(&s->srv->lock);
	return NULL;
}

static void start_session(struct server *srv, int fd)
{
	struct session *s = calloc(1, sizeof(*s));

	if (!s) {
		close(fd);
		return;
	}
	s->srv = srv;
	s->fd = fd;
	pthread_mutex_lock(&srv->lock);
	if (pthread_create(&s->thread, NULL, session_main, s) != 0) {
		pthread_mutex_unlock(&srv->lock);
		fprintf(stderr, "amtsim: cannot start a thread for a connection\n");
		close(fd);
		free(s);
		return;
	}
	s->next = srv->sessions;
	srv->sessions = s;
	pthread_mutex_unlock(&srv->lock);
}

/* Join finished sessions; with ALL, shut the others down first and join them too. */
static void reap_sessions(struct server *srv, bool all)
{
	struct session *s, **pp, *finished = NULL;

	pthread_mutex_lock(&srv->lock);
	for (pp = &srv->sessions; (s = *pp);) {
		if (all && s->fd >= 0)
			shutdown(s->fd, SHUT_RDWR);
		if (all || s->done) {
			*pp = s->next;
			s->next = finished;
			finished = s;
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	while ((s = finished)) {
		finished = s->next;
		pthread_join(s->thread, NULL);
		free(s);
	}
}

static int listen_at(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "amtsim: %s: socket path too long\n", path);
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "amtsim: %s: exists and is not a socket\n", path);
			return -1;
		}
		unlink(path); /* a stale socket from an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "amtsim: socket: %s\n", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
		fprintf(stderr, "amtsim: %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct amtsim_unix_server {
	struct server srv;
	char *path;
	int lfd;
	int stop_fd; /* eventfd: stop accepting */
	pthread_t thread;
};

static void *accept_main(void *arg)
{
	struct amtsim_unix_server *u = arg;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = u->lfd, .events = POLLIN},
					{.fd = u->stop_fd, .events = POLLIN}};

		if (poll(pfd, 2, 1000) < 0 && errno != EINTR) {
			fprintf(stderr, "amtsim: poll: %s\n", strerror(errno));
			break;
		}
		reap_sessions(&u->srv, false);
		if (pfd[1].revents & POLLIN)
			break;
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(u->lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0)
				start_session(&u->srv, fd);
			else if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
				fprintf(stderr, "amtsim: accept: %s\n", strerror(errno));
		}
	}
	return NULL;
}

int amtsim_unix_server_start(struct amtsim *m, const char *path, const char *stats_path,
			     struct amtsim_unix_server **out)
{
	struct amtsim_unix_server *u = calloc(1, sizeof(*u));

	*out = NULL;
	if (!u)
		return -1;
	u->srv = (struct server){.m = m, .stats_path = stats_path};
	u->path = strdup(path);
	u->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	u->lfd = u->path && u->stop_fd >= 0 ? listen_at(path) : -1;
	if (u->lfd < 0) {
		if (u->stop_fd >= 0)
			close(u->stop_fd);
		free(u->path);
		free(u);
		return -1;
	}
	pthread_mutex_init(&u->srv.lock, NULL);
	if (pthread_create(&u->thread, NULL, accept_main, u) != 0) {
		fprintf(stderr, "amtsim: cannot start the accepting thread\n");
		close(u->lfd);
		unlink(path);
		close(u->stop_fd);
		pthread_mutex_destroy(&u->srv.lock);
		free(u->path);
		free(u);
		return -1;
	}
	*out = u;
	return 0;
}

void amtsim_unix_server_stop(struct amtsim_unix_server *u)
{
	uint64_t one = 1;

	if (!u)
		return;
	if (write(u->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		fprintf(stderr, "amtsim: cannot stop the accepting thread: %s\n", strerror(errno));
	pthread_join(u->thread, NULL);
	close(u->lfd);
	unlink(u->path);
	reap_sessions(&u->srv, true);
	write_stats(&u->srv);
	pthread_mutex_destroy(&u->srv.lock);
	close(u->stop_fd);
	free(u->path);
	free(u);
}

int amtsim_serve_unix(struct amtsim *m, const char *path, const char *stats_path)
{
	struct amtsim_unix_server *u;
	struct signalfd_siginfo si;
	sigset_t mask, old;
	int sfd;

	/* Signals are taken by signalfd only: every thread started below inherits the mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "amtsim: signalfd: %s\n", strerror(errno));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return 1;
	}
	if (amtsim_unix_server_start(m, path, stats_path, &u) < 0) {
		close(sfd);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return 1;
	}
	printf("amtsim: listening on %s\n", path);
	(void)fflush(stdout);

	/* Consumed here, so it is not delivered when the mask is restored. */
	while (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si)) {
		if (errno != EINTR) {
			fprintf(stderr, "amtsim: signalfd: %s\n", strerror(errno));
			break;
		}
	}
	amtsim_unix_server_stop(u);
	close(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}
