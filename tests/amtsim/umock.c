/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amtsim's umockdev front end: "amtsim --profile FILE --run -- CMD" gives CMD (run with
 * libumockdev-preload) a /dev/mei0 and a /sys/class/mei/mei0 served by the emulator core, so any
 * unmodified MEI client can be tested.
 *
 * How the pieces fit (umockdev 0.17.16):
 *   - The testbed holds one mei device whose "N: mei0" line makes /dev/mei0 a symlink to a PTY
 *     slave. open/ioctl/read/write on it are forwarded by the preload library over a Unix socket
 *     to the UMockdevIoctlBase handler below; each open fd is one UMockdevIoctlClient, and each
 *     client maps to at most one struct amtsim_conn. All handler code runs in the testbed's worker
 *     thread (its thread-default GMainContext); nothing here blocks it longer than the core's
 *     per-message latency.
 *   - poll()/select() are not intercepted: they see the PTY. A "doorbell" byte is written to the
 *     PTY master while the client's connection has a message queued (or was reset) and read back
 *     out of the slave once it has none, so poll() reports POLLIN exactly when a read would not
 *     block. To keep that exact per fd, every open gets its own PTY: when a client appears, the
 *     /dev/mei0 symlink is re-pointed at a fresh PTY for the next open. The client's PTY is
 *     confirmed on its first write (the write is also executed on its real fd and seen arriving on
 *     one master), which covers opens that raced the re-pointing.
 *   - dev_state is refreshed from the core every 50 ms from the main thread.
 *   - The child is spawned with LD_PRELOAD (umockdev's library, then the __read_chk shim of
 *     umock_fortify.c when it sits beside this program) and UMOCKDEV_DIR; the main loop runs until
 *     it exits.
 *
 * Limits: a read with nothing queued blocks until a message or a reset comes, as on a blocking
 * fd (O_NONBLOCK is not visible through umockdev, so there is no EAGAIN); while it blocks, the
 * preload holds that fd's lock and the calling thread's signals are blocked. Two opens with no
 * other call on the first fd in between can land on one PTY; poll() on either then also sees
 * the other's message.
 */
#include "amtsim.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib.h>
#include <linux/mei.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <umockdev.h>
#include <unistd.h>

#define DEVNODE      "/dev/mei0"
#define DEV_SYSPATH  "/devices/pci0000:00/0000:00:16.0/mei/mei0"
#define DEV_MAJMIN   "240:0"
#define PRELOAD_LIB  "libumockdev-preload.so.0"
#define FORTIFY_LIB  "libamtsim-fortify.so" /* umock_fortify.c, beside the amtsim binary */
#define STATE_POLL_MS 50
#define PTY_WAIT_MS  2000 /* bound on a doorbell byte crossing the PTY (normally microseconds) */
#define SHUTDOWN_MS  10000

/* One PTY that /dev/mei0 pointed at for one or more opens. */
struct mpty {
	int master;
	int slave;   /* our own slave fd: reads the doorbells back out */
	int ptn;     /* /dev/pts/N */
	int refs;    /* clients assigned to it */
	int bells;   /* doorbell bytes that should be in its input queue */
	bool ours;   /* created here (else the testbed's, which it closes) */
};

struct umock;

/*
 * One open fd of /dev/mei0 in the child. Worker thread only.
 *
 * umockdev 0.17.16 never tells that a client went away (its "connected" property is not
 * notified and "client-vanished" is not emitted), but the client object is finalized once the
 * fd is closed and no operation is in flight. So the client is held by a weak reference, and by a
 * strong one only while a read waits for a message (the object must outlive the completion).
 */
struct uclient {
	struct umock *u;
	UMockdevIoctlClient *client; /* weak; strong while held */
	bool held;
	struct mpty *pty;
	bool verified;               /* pty confirmed by a write seen on its master */
	struct amtsim_conn *conn;
	bool reset;                  /* the core answered ENODEV on this connection */
	bool more;                   /* part of a message is still to be read */
	bool bell;                   /* this client's doorbell byte is in its PTY */
	bool read_pending;           /* a read waits for a message */
	bool tried;                  /* made a connect (for the counters file) */
	GSource *watch;              /* amtsim_conn_fd readable, while no bell is rung */
};

struct umock {
	struct amtsim *m;
	const char *stats_path;
	UMockdevTestbed *tb;
	UMockdevIoctlBase *handler;
	char *root;    /* testbed root */
	char *devpath; /* "/sys/devices/.../mei0" */
	char dev_state[64];

	GMainLoop *loop;
	GPid pid;
	int wait_status;
	bool exited;

	GMutex lock; /* wctx, closing, shut_done */
	GCond cond;
	GMainContext *wctx; /* the testbed's worker context, learnt from the first callback */
	bool closing;
	bool shut_done;

	/* worker thread only (and main thread after shutdown) */
	GHashTable *clients; /* UMockdevIoctlClient* -> struct uclient* */
	GPtrArray *ptys;     /* struct mpty* */
	struct mpty *next;   /* where /dev/mei0 points now */
};

static void warnx(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)fputs("amtsim: ", stderr);
	(void)vfprintf(stderr, fmt, ap);
	(void)fputc('\n', stderr);
	va_end(ap);
}

/* ---- small fd helpers ---- */

static bool fd_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

static int inq(int fd)
{
	int n = 0;

	if (ioctl(fd, FIONREAD, &n) < 0)
		return -1;
	return n;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until FD has at least WANT bytes queued for reading, up to PTY_WAIT_MS. */
static bool wait_inq(int fd, int want)
{
	long long end = now_ms() + PTY_WAIT_MS;

	for (;;) {
		int n = inq(fd);

		if (n < 0)
			return false;
		if (n >= want)
			return true;
		long long left = end - now_ms();
		if (left <= 0)
			return false;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		/* POLLIN is already set while fewer than WANT bytes are there: then nap briefly */
		if (n > 0) {
			g_usleep(200);
			continue;
		}
		if (poll(&p, 1, (int)(left < 100 ? left : 100)) < 0 && errno != EINTR)
			return false;
	}
}

/* ---- PTYs ---- */

static int make_raw(int fd)
{
	struct termios t;

	if (tcgetattr(fd, &t) < 0)
		return -1;
	cfmakeraw(&t);
	return tcsetattr(fd, TCSANOW, &t);
}

/* Open our own slave of MASTER, non-blocking, for draining doorbells. */
static int open_slave(int master, int *ptn)
{
	char name[64];

	if (ioctl(master, TIOCGPTN, ptn) < 0)
		return -1;
	snprintf(name, sizeof(name), "/dev/pts/%d", *ptn);
	int fd = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (make_raw(fd) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct mpty *pty_adopt(struct umock *u, int master, bool ours)
{
	struct mpty *p = g_new0(struct mpty, 1);

	p->master = master;
	p->ours = ours;
	p->slave = open_slave(master, &p->ptn);
	if (p->slave < 0) {
		warnx("cannot open the slave of a PTY: %s", g_strerror(errno));
		g_free(p);
		return NULL;
	}
	g_ptr_array_add(u->ptys, p);
	return p;
}

static char *ptymap_path(struct umock *u, int ptn)
{
	char name[64];

	snprintf(name, sizeof(name), "_dev_pts_%d", ptn);
	return g_build_filename(u->root, "dev", ".ptymap", name, NULL);
}

static void pty_close(struct umock *u, struct mpty *p)
{
	g_ptr_array_remove(u->ptys, p);
	if (p->slave >= 0)
		close(p->slave);
	if (p->ours) {
		char *map = ptymap_path(u, p->ptn);
		(void)unlink(map);
		g_free(map);
		close(p->master);
	}
	g_free(p);
}

/*
 * Point /dev/mei0 at a fresh PTY for the next open. On failure /dev/mei0 keeps pointing where
 * it did, and clients share that PTY (poll then reports a message queued on any of them).
 */
static void pty_rotate(struct umock *u)
{
	int master = -1, slave = -1;

	if (openpty(&master, &slave, NULL, NULL, NULL) < 0) {
		warnx("openpty: %s", g_strerror(errno));
		return;
	}
	close(slave);
	(void)fcntl(master, F_SETFD, FD_CLOEXEC);
	if (make_raw(master) < 0) {
		close(master);
		return;
	}
	struct mpty *p = pty_adopt(u, master, true);
	if (!p) {
		close(master);
		return;
	}

	char target[64];
	snprintf(target, sizeof(target), "/dev/pts/%d", p->ptn);
	char *map = ptymap_path(u, p->ptn);
	char *node = g_build_filename(u->root, "dev", "mei0", NULL);
	char *tmp = g_strdup_printf("%s.new", node);
	(void)unlink(map);
	(void)unlink(tmp);
	if (symlink(DEV_MAJMIN, map) < 0 || symlink(target, tmp) < 0 || rename(tmp, node) < 0) {
		warnx("cannot re-point %s: %s", node, g_strerror(errno));
		(void)unlink(tmp);
		pty_close(u, p);
	} else {
		u->next = p;
	}
	g_free(map);
	g_free(node);
	g_free(tmp);
}

static void pty_unref(struct umock *u, struct mpty *p)
{
	if (--p->refs == 0 && p != u->next && p->ours)
		pty_close(u, p);
}

/* ---- doorbell ---- */

static void ring(struct mpty *p)
{
	static const char b = '!';

	p->bells++;
	if (write(p->master, &b, 1) != 1)
		warnx("doorbell write: %s", g_strerror(errno));
	/* return only once the byte is visible on the slave, so a poll() right after sees it */
	else if (!wait_inq(p->slave, p->bells))
		warnx("doorbell byte did not arrive on /dev/pts/%d", p->ptn);
}

static void unring(struct mpty *p)
{
	char b;

	if (p->bells > 0)
		p->bells--;
	if (!wait_inq(p->slave, 1) || read(p->slave, &b, 1) != 1)
		warnx("doorbell byte missing on /dev/pts/%d: the client read /dev/mei0 past umockdev "
		      "(__read_chk without " FORTIFY_LIB "?)",
		      p->ptn);
}

static gboolean on_conn_fd(gint fd, GIOCondition cond, gpointer data);

static bool conn_ready(struct uclient *uc)
{
	return uc->conn && (uc->more || fd_readable(amtsim_conn_fd(uc->conn)));
}

static void watch_stop(struct uclient *uc)
{
	if (uc->watch) {
		g_source_destroy(uc->watch);
		g_source_unref(uc->watch);
		uc->watch = NULL;
	}
}

/*
 * Make the PTY tell the truth: the doorbell is rung iff the connection has something for a
 * read (a message, the rest of one, or a reset), and the core's fd is watched otherwise.
 */
static void settle(struct uclient *uc)
{
	bool want = conn_ready(uc);

	if (want && !uc->bell) {
		ring(uc->pty);
		uc->bell = true;
	} else if (!want && uc->bell) {
		unring(uc->pty);
		uc->bell = false;
	}
	if (uc->conn && !uc->bell) {
		if (!uc->watch) {
			uc->watch = g_unix_fd_source_new(amtsim_conn_fd(uc->conn), G_IO_IN);
			g_source_set_callback(uc->watch, G_SOURCE_FUNC(on_conn_fd), uc, NULL);
			g_source_attach(uc->watch, uc->u->wctx);
		}
	} else {
		watch_stop(uc);
	}
}

/* ---- clients ---- */

static void on_client_gone(gpointer data, GObject *gone);

static void learn_worker_ctx(struct umock *u)
{
	g_mutex_lock(&u->lock);
	if (!u->wctx)
		u->wctx = g_main_context_ref_thread_default();
	g_mutex_unlock(&u->lock);
}

static bool is_closing(struct umock *u)
{
	g_mutex_lock(&u->lock);
	bool c = u->closing;
	g_mutex_unlock(&u->lock);
	return c;
}

static struct uclient *uclient_get(struct umock *u, UMockdevIoctlClient *client)
{
	struct uclient *uc = g_hash_table_lookup(u->clients, client);

	if (uc)
		return uc;
	uc = g_new0(struct uclient, 1);
	uc->u = u;
	uc->client = client;
	uc->pty = u->next;
	uc->pty->refs++;
	g_hash_table_insert(u->clients, client, uc);
	g_object_weak_ref(G_OBJECT(client), on_client_gone, uc);
	/* the next open of /dev/mei0 gets a PTY of its own */
	pty_rotate(u);
	return uc;
}

static void conn_drop(struct uclient *uc)
{
	watch_stop(uc);
	if (uc->bell) {
		unring(uc->pty);
		uc->bell = false;
	}
	if (uc->conn) {
		amtsim_disconnect(uc->conn);
		uc->conn = NULL;
	}
	uc->reset = false;
	uc->more = false;
}

static void hold(struct uclient *uc)
{
	if (!uc->held) {
		g_object_ref(uc->client);
		uc->held = true;
	}
}

/* Drop the strong reference: the last thing done with UC, which may be freed by it. */
static void unhold(struct uclient *uc)
{
	if (uc->held) {
		uc->held = false;
		g_object_unref(uc->client);
	}
}

static void uclient_forget(struct uclient *uc)
{
	struct umock *u = uc->u;
	bool stats = uc->tried && u->stats_path && !is_closing(u);

	conn_drop(uc);
	g_hash_table_remove(u->clients, uc->client);
	pty_unref(u, uc->pty);
	g_free(uc);
	/* as the socket front end does: the counters after every connection */
	if (stats && amtsim_write_stats(u->m, u->stats_path) < 0)
		warnx("%s: cannot write the counters: %s", u->stats_path, g_strerror(errno));
}

/* The client object was finalized: its fd was closed. */
static void on_client_gone(gpointer data, GObject *gone)
{
	(void)gone;
	uclient_forget(data);
}

/* At exit: let go of a client that may still be there (a read of it may still wait). */
static void uclient_free(struct uclient *uc)
{
	UMockdevIoctlClient *client = uc->client;
	bool held = uc->held;

	g_object_weak_unref(G_OBJECT(client), on_client_gone, uc);
	if (uc->read_pending)
		umockdev_ioctl_client_complete(client, -1, ENODEV);
	uclient_forget(uc);
	if (held)
		g_object_unref(client);
}

static void on_client_connected(UMockdevIoctlBase *base, UMockdevIoctlClient *client, gpointer data)
{
	struct umock *u = data;

	(void)base;
	learn_worker_ctx(u);
	if (!is_closing(u))
		(void)uclient_get(u, client);
}

/*
 * Learn which PTY the client's fd is really on: execute its write on the real fd and see which
 * master the bytes come out of.
 */
static void verify_pty(struct uclient *uc)
{
	struct umock *u = uc->u;
	GError *err = NULL;
	int e = 0;

	uc->verified = true;
	int r = umockdev_ioctl_client_execute(uc->client, &e, &err);
	if (err) {
		warnx("cannot check the PTY of a client: %s", err->message);
		g_error_free(err);
		return;
	}
	if (r <= 0)
		return;

	long long end = now_ms() + PTY_WAIT_MS;
	while (now_ms() < end) {
		for (guint i = 0; i < u->ptys->len; i++) {
			struct mpty *p = g_ptr_array_index(u->ptys, i);
			int n = inq(p->master);
			if (n <= 0)
				continue;
			/* drain exactly what the client wrote */
			char buf[4096];
			int left = r;
			while (left > 0 && wait_inq(p->master, 1)) {
				ssize_t k = read(p->master, buf,
						 (size_t)left < sizeof(buf) ? (size_t)left : sizeof(buf));
				if (k <= 0)
					break;
				left -= (int)k;
			}
			if (p != uc->pty) {
				/* the open raced the re-pointing of /dev/mei0 */
				if (uc->bell) {
					unring(uc->pty);
					uc->bell = false;
				}
				p->refs++;
				pty_unref(u, uc->pty);
				uc->pty = p;
			}
			return;
		}
		g_usleep(200);
	}
	warnx("could not tell which PTY a client is on; poll() may be inexact");
}

/* ---- handlers ---- */

static void serve_read(struct uclient *uc)
{
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(uc->client);
	size_t len = 0;
	bool more = false;

	int r = amtsim_recv(uc->conn, arg->data, (size_t)arg->data_len, &len, &more);
	if (r == EAGAIN) {
		uc->read_pending = true; /* as a blocking read does: wait for the message */
		hold(uc);
		settle(uc);
		return;
	}
	uc->read_pending = false;
	if (r == 0) {
		uc->more = more;
		settle(uc);
		umockdev_ioctl_client_complete(uc->client, (glong)len, 0);
	} else {
		if (r == ENODEV)
			uc->reset = true;
		uc->more = false;
		settle(uc);
		umockdev_ioctl_client_complete(uc->client, -1, r);
	}
	unhold(uc);
}

static gboolean on_conn_fd(gint fd, GIOCondition cond, gpointer data)
{
	struct uclient *uc = data;

	(void)fd;
	(void)cond;
	g_source_unref(uc->watch);
	uc->watch = NULL;
	if (uc->read_pending)
		serve_read(uc);
	else
		settle(uc);
	return G_SOURCE_REMOVE;
}

static gboolean on_read(UMockdevIoctlBase *base, UMockdevIoctlClient *client, gpointer data)
{
	struct umock *u = data;

	(void)base;
	learn_worker_ctx(u);
	if (is_closing(u)) {
		umockdev_ioctl_client_complete(client, -1, ENODEV);
		return TRUE;
	}
	struct uclient *uc = uclient_get(u, client);
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);

	if (!uc->conn) {
		umockdev_ioctl_client_complete(client, -1, ENODEV);
		return TRUE;
	}
	if (arg->data_len <= 0) {
		umockdev_ioctl_client_complete(client, 0, 0);
		return TRUE;
	}
	serve_read(uc);
	return TRUE;
}

static gboolean on_write(UMockdevIoctlBase *base, UMockdevIoctlClient *client, gpointer data)
{
	struct umock *u = data;

	(void)base;
	learn_worker_ctx(u);
	if (is_closing(u)) {
		umockdev_ioctl_client_complete(client, -1, ENODEV);
		return TRUE;
	}
	struct uclient *uc = uclient_get(u, client);

	if (!uc->verified && uc->conn)
		verify_pty(uc);
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
	if (!uc->conn) {
		umockdev_ioctl_client_complete(client, -1, ENODEV);
		return TRUE;
	}
	if (arg->data_len <= 0) {
		umockdev_ioctl_client_complete(client, 0, 0);
		return TRUE;
	}
	int r = amtsim_send(uc->conn, arg->data, (size_t)arg->data_len);
	if (r == ENODEV)
		uc->reset = true;
	settle(uc); /* the reply is queued by now: ring before the write returns */
	if (r == 0)
		umockdev_ioctl_client_complete(client, arg->data_len, 0);
	else
		umockdev_ioctl_client_complete(client, -1, r);
	return TRUE;
}

static void do_connect(struct uclient *uc, UMockdevIoctlClient *client)
{
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
	GError *err = NULL;
	UMockdevIoctlData *d =
		umockdev_ioctl_data_resolve(arg, 0, sizeof(struct mei_connect_client_data), &err);

	if (!d) {
		if (err)
			g_error_free(err);
		umockdev_ioctl_client_complete(client, -1, EFAULT);
		return;
	}
	if ((size_t)d->data_len < sizeof(struct mei_connect_client_data)) {
		g_object_unref(d);
		umockdev_ioctl_client_complete(client, -1, EFAULT);
		return;
	}
	if (uc->conn && !uc->reset) {
		/* the kernel refuses a second connect on a connected fd */
		g_object_unref(d);
		umockdev_ioctl_client_complete(client, -1, EBUSY);
		return;
	}
	conn_drop(uc); /* reconnect after a firmware reset */
	uc->tried = true;

	uint8_t guid[16];
	uint32_t max_len = 0;
	uint8_t version = 0;
	memcpy(guid, d->data, sizeof(guid));
	int r = amtsim_connect(uc->u->m, guid, &uc->conn, &max_len, &version);
	if (r != 0) {
		uc->conn = NULL;
		g_object_unref(d);
		umockdev_ioctl_client_complete(client, -1, r);
		return;
	}
	/* like the kernel, only the properties are written over the GUID; the rest stays */
	struct mei_client props;
	memcpy(&props, d->data, sizeof(props));
	props.max_msg_length = max_len;
	props.protocol_version = version;
	memcpy(d->data, &props, sizeof(props));
	g_object_unref(d);
	settle(uc);
	umockdev_ioctl_client_complete(client, 0, 0);
}

static gboolean on_ioctl(UMockdevIoctlBase *base, UMockdevIoctlClient *client, gpointer data)
{
	struct umock *u = data;

	(void)base;
	learn_worker_ctx(u);
	if (is_closing(u)) {
		umockdev_ioctl_client_complete(client, -1, ENODEV);
		return TRUE;
	}
	struct uclient *uc = uclient_get(u, client);
	gulong req = umockdev_ioctl_client_get_request(client);

	switch (req) {
	case IOCTL_MEI_CONNECT_CLIENT:
		do_connect(uc, client);
		break;
	case IOCTL_MEI_CONNECT_CLIENT_VTAG:
	case IOCTL_MEI_NOTIFY_SET:
	case IOCTL_MEI_NOTIFY_GET:
		/* firmware without vtag and notification support */
		umockdev_ioctl_client_complete(client, -1, EOPNOTSUPP);
		break;
	default:
		/* anything else, termios included: not a tty, as the real device is not */
		umockdev_ioctl_client_complete(client, -1, ENOTTY);
		break;
	}
	return TRUE;
}

/* ---- shutdown of the worker-side state ---- */

static gboolean worker_shutdown(gpointer data)
{
	struct umock *u = data;

	g_mutex_lock(&u->lock);
	u->closing = true;
	g_mutex_unlock(&u->lock);

	GList *all = g_hash_table_get_values(u->clients);
	for (GList *l = all; l; l = l->next)
		uclient_free(l->data);
	g_list_free(all);
	g_signal_handlers_disconnect_by_data(u->handler, u);

	g_mutex_lock(&u->lock);
	u->shut_done = true;
	g_cond_broadcast(&u->cond);
	g_mutex_unlock(&u->lock);
	return G_SOURCE_REMOVE;
}

static void shutdown_worker(struct umock *u)
{
	g_mutex_lock(&u->lock);
	GMainContext *ctx = u->wctx ? g_main_context_ref(u->wctx) : NULL;
	if (!ctx)
		u->closing = true; /* no client ever came: nothing runs there */
	g_mutex_unlock(&u->lock);

	if (!ctx) {
		g_signal_handlers_disconnect_by_data(u->handler, u);
		return;
	}
	g_main_context_invoke(ctx, worker_shutdown, u);
	gint64 end = g_get_monotonic_time() + (gint64)SHUTDOWN_MS * 1000;
	g_mutex_lock(&u->lock);
	while (!u->shut_done)
		if (!g_cond_wait_until(&u->cond, &u->lock, end))
			break;
	bool done = u->shut_done;
	g_mutex_unlock(&u->lock);
	g_main_context_unref(ctx);
	if (!done) {
		/* the worker is stuck: leave everything allocated rather than free under it */
		warnx("the umockdev worker did not finish; leaking its state");
		u->clients = NULL;
	}
}

/* ---- testbed ---- */

static bool set_attr(struct umock *u, const char *name)
{
	const char *v = amtsim_sysfs_attr(u->m, name);

	if (!v)
		return false;
	umockdev_testbed_set_attribute(u->tb, u->devpath, name, v);
	return true;
}

static gboolean refresh_dev_state(gpointer data)
{
	struct umock *u = data;
	const char *v = amtsim_sysfs_attr(u->m, "dev_state");

	if (v && strcmp(v, u->dev_state) != 0) {
		g_strlcpy(u->dev_state, v, sizeof(u->dev_state));
		umockdev_testbed_set_attribute(u->tb, u->devpath, "dev_state", v);
	}
	return G_SOURCE_CONTINUE;
}

static int setup_testbed(struct umock *u)
{
	GError *err = NULL;

	u->tb = umockdev_testbed_new();
	u->root = umockdev_testbed_get_root_dir(u->tb);
	if (!umockdev_testbed_add_from_string(u->tb,
					      "P: " DEV_SYSPATH "\n"
					      "N: mei0\n"
					      "E: SUBSYSTEM=mei\n"
					      "E: DEVNAME=/dev/mei0\n"
					      "E: MAJOR=240\n"
					      "E: MINOR=0\n"
					      "A: dev=" DEV_MAJMIN "\\n\n"
					      "\n",
					      &err)) {
		warnx("umockdev: %s", err ? err->message : "cannot add the mei device");
		g_clear_error(&err);
		return -1;
	}
	u->devpath = g_strdup("/sys" DEV_SYSPATH);

	static const char *const attrs[] = {"fw_ver", "fw_status", "hbm_ver", "kind"};
	for (size_t i = 0; i < G_N_ELEMENTS(attrs); i++)
		(void)set_attr(u, attrs[i]);
	g_strlcpy(u->dev_state, "", sizeof(u->dev_state));
	refresh_dev_state(u);

	/*
	 * umockdev files an unknown subsystem as a bus; the kernel has mei as a class:
	 * /sys/class/mei/mei0 -> the device, its "subsystem" -> class/mei, no bus/mei/devices/mei0.
	 */
	char *sys = umockdev_testbed_get_sys_dir(u->tb);
	char *cls = g_build_filename(sys, "class", "mei", NULL);
	char *link = g_build_filename(cls, "mei0", NULL);
	char *sub = g_build_filename(sys, DEV_SYSPATH, "subsystem", NULL);
	char *bus = g_build_filename(sys, "bus", "mei", "devices", "mei0", NULL);
	int rc = 0;
	if (g_mkdir_with_parents(cls, 0755) < 0 ||
	    (symlink("../../devices/pci0000:00/0000:00:16.0/mei/mei0", link) < 0 &&
	     errno != EEXIST)) {
		warnx("cannot create %s: %s", link, g_strerror(errno));
		rc = -1;
	}
	(void)unlink(bus);
	(void)unlink(sub);
	if (symlink("../../../../../class/mei", sub) < 0)
		warnx("cannot create %s: %s", sub, g_strerror(errno));
	g_free(sys);
	g_free(cls);
	g_free(link);
	g_free(sub);
	g_free(bus);
	if (rc < 0)
		return -1;

	/* the PTY behind /dev/mei0, plus our own slave of it */
	int master = umockdev_testbed_get_dev_fd(u->tb, DEVNODE);
	if (master < 0) {
		warnx("umockdev did not make %s a PTY", DEVNODE);
		return -1;
	}
	if (make_raw(master) < 0)
		warnx("cannot set the PTY of %s raw: %s", DEVNODE, g_strerror(errno));
	u->next = pty_adopt(u, master, false);
	if (!u->next)
		return -1;

	u->handler = umockdev_ioctl_base_new();
	g_signal_connect(u->handler, "client-connected", G_CALLBACK(on_client_connected), u);
	g_signal_connect(u->handler, "handle-ioctl", G_CALLBACK(on_ioctl), u);
	g_signal_connect(u->handler, "handle-read", G_CALLBACK(on_read), u);
	g_signal_connect(u->handler, "handle-write", G_CALLBACK(on_write), u);
	if (!umockdev_testbed_attach_ioctl(u->tb, DEVNODE, u->handler, &err)) {
		warnx("umockdev: cannot attach the handler: %s", err ? err->message : "?");
		g_clear_error(&err);
		return -1;
	}
	return 0;
}

/* ---- child ---- */

/*
 * The __read_chk() shim (umock_fortify.c) when it was built beside this program: umockdev
 * 0.17.16 does not intercept __read_chk(), which FORTIFY-built clients call for reads into
 * buffers of a known size. Without it such reads miss the emulation.
 */
static char *fortify_shim(void)
{
	char *exe = g_file_read_link("/proc/self/exe", NULL);
	char *lib = NULL;

	if (exe) {
		char *dir = g_path_get_dirname(exe);
		lib = g_build_filename(dir, FORTIFY_LIB, NULL);
		g_free(dir);
		g_free(exe);
	}
	if (lib && (!g_file_test(lib, G_FILE_TEST_IS_REGULAR) || strpbrk(lib, ": "))) {
		g_free(lib);
		lib = NULL;
	}
	return lib;
}

static char **child_env(struct umock *u)
{
	char **env = g_get_environ();
	const char *pre = g_environ_getenv(env, "LD_PRELOAD");
	char *shim = fortify_shim();
	char *head = shim ? g_strconcat(PRELOAD_LIB, ":", shim, NULL) : g_strdup(PRELOAD_LIB);
	char *v;

	/* umockdev's first: the shim's read() must bind to its wrapper */
	if (pre && *pre)
		v = g_strconcat(head, ":", pre, NULL);
	else
		v = g_strdup(head);
	g_free(head);
	g_free(shim);
	env = g_environ_setenv(env, "LD_PRELOAD", v, TRUE);
	g_free(v);
	env = g_environ_setenv(env, "UMOCKDEV_DIR", u->root, TRUE);

	/* an ASan-built child would refuse a preload ahead of its runtime */
	const char *asan = g_environ_getenv(env, "ASAN_OPTIONS");
	if (!asan || !*asan)
		env = g_environ_setenv(env, "ASAN_OPTIONS", "verify_asan_link_order=0", TRUE);
	else if (!strstr(asan, "verify_asan_link_order")) {
		v = g_strconcat(asan, ":verify_asan_link_order=0", NULL);
		env = g_environ_setenv(env, "ASAN_OPTIONS", v, TRUE);
		g_free(v);
	}
	return env;
}

static void on_child_exit(GPid pid, gint status, gpointer data)
{
	struct umock *u = data;

	g_spawn_close_pid(pid);
	u->wait_status = status;
	u->exited = true;
	g_main_loop_quit(u->loop);
}

struct fwd {
	struct umock *u;
	int sig;
};

static gboolean forward_signal(gpointer data)
{
	struct fwd *f = data;

	if (!f->u->exited)
		(void)kill(f->u->pid, f->sig);
	return G_SOURCE_CONTINUE;
}

static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 1;
}

int amtsim_run_umockdev(struct amtsim *m, char *const argv[], const char *stats_path)
{
	struct umock u = {.m = m, .stats_path = stats_path};
	int rc = 125;

	if (!argv || !argv[0]) {
		warnx("--run needs a command");
		return 125;
	}
	g_mutex_init(&u.lock);
	g_cond_init(&u.cond);
	u.clients = g_hash_table_new(g_direct_hash, g_direct_equal);
	u.ptys = g_ptr_array_new();

	if (setup_testbed(&u) < 0)
		goto out;

	char **env = child_env(&u);
	GError *err = NULL;
	gboolean ok = g_spawn_async(NULL, (gchar **)argv, env,
				    G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD |
					    G_SPAWN_CHILD_INHERITS_STDIN,
				    NULL, NULL, &u.pid, &err);
	g_strfreev(env);
	if (!ok) {
		warnx("cannot run %s: %s", argv[0], err ? err->message : "?");
		g_clear_error(&err);
		rc = 127;
		goto out_worker;
	}

	u.loop = g_main_loop_new(NULL, FALSE);
	g_child_watch_add(u.pid, on_child_exit, &u);
	guint state_id = g_timeout_add(STATE_POLL_MS, refresh_dev_state, &u);
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	struct fwd fwd[G_N_ELEMENTS(sigs)];
	guint sig_ids[G_N_ELEMENTS(sigs)];
	for (size_t i = 0; i < G_N_ELEMENTS(sigs); i++) {
		fwd[i] = (struct fwd){.u = &u, .sig = sigs[i]};
		sig_ids[i] = g_unix_signal_add(sigs[i], forward_signal, &fwd[i]);
	}
	g_main_loop_run(u.loop);
	for (size_t i = 0; i < G_N_ELEMENTS(sigs); i++)
		g_source_remove(sig_ids[i]);
	g_source_remove(state_id);
	g_main_loop_unref(u.loop);
	rc = status_code(u.wait_status);

out_worker:
	shutdown_worker(&u);
	if (stats_path && amtsim_write_stats(m, stats_path) < 0) {
		warnx("%s: cannot write the counters: %s", stats_path, g_strerror(errno));
		if (rc == 0)
			rc = 1;
	}
out:
	if (u.tb && u.handler)
		(void)umockdev_testbed_detach_ioctl(u.tb, DEVNODE, NULL);
	if (u.clients) {
		while (u.ptys->len > 0)
			pty_close(&u, g_ptr_array_index(u.ptys, u.ptys->len - 1));
		g_hash_table_unref(u.clients);
		g_ptr_array_unref(u.ptys);
	}
	if (u.handler)
		g_object_unref(u.handler);
	if (u.tb)
		g_object_unref(u.tb);
	g_free(u.root);
	g_free(u.devpath);
	g_mutex_lock(&u.lock);
	if (u.wctx)
		g_main_context_unref(u.wctx);
	g_mutex_unlock(&u.lock);
	g_mutex_clear(&u.lock);
	g_cond_clear(&u.cond);
	return rc;
}
