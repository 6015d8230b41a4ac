/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device transport against a scripted fake of the emulator's "unix:" socket: a server thread
 * bound in a temporary directory that answers the connect with a chosen errno and then plays one
 * conversation behaviour (echo, silence, closing, oversized replies, ...).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/mei.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../tests/fixture.h"
#include "mei.h"

#define READY_MS   300
#define RECV_MS    1000
#define BUSY_TRIES 3
#define BUSY_BASE  10
#define SLACK_MS   200 /* scheduling noise allowed on top of a deadline (sanitizer builds too) */

enum fake_mode {
	FAKE_ECHO,
	FAKE_SILENT,
	FAKE_CLOSE_ON_REQUEST, /* the first `closes` connections close on their first request */
	FAKE_OVERSIZE,         /* every reply is max_msg_length + 10 bytes */
	FAKE_DELAYED_ECHO,     /* echo after delay_ms */
};

struct fake {
	char dir[64];
	char sock[100]; /* fits sun_path */
	char device[120];
	char sysfs[160]; /* an empty sysfs root */
	int lfd;
	int stop[2];
	pthread_t thread;
	bool running;
	/* the script */
	enum fake_mode mode;
	uint32_t refuse_errno; /* connect reply errno while refusing */
	int refuse_count;      /* refuse this many connects; -1 forever */
	int refuse_ms;         /* > 0: refuse while less than this has passed since the start */
	int closes;
	int delay_ms;
	bool send_stale;
	bool short_reply;
	uint32_t mml;
	uint8_t pv;
	/* what the server saw */
	atomic_int attempts;
	atomic_int accepted;
	atomic_int requests;
	uint8_t guid[16];
	struct timespec start;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static struct mei_opts test_opts(const struct fake *f)
{
	struct mei_opts o;

	mei_opts_default(&o);
	o.sysfs_root = f->sysfs;
	o.ready_ms = READY_MS;
	o.recv_ms = RECV_MS;
	o.busy_retries = BUSY_TRIES;
	o.busy_base_ms = BUSY_BASE;
	return o;
}

/* ---- the fake server ---- */

/* One message from CFD, or 0 at EOF, or -1 when told to stop. */
static ssize_t fake_recv(struct fake *f, int cfd, uint8_t *buf, size_t cap)
{
	struct pollfd p[2] = {{.fd = cfd, .events = POLLIN}, {.fd = f->stop[0], .events = POLLIN}};

	while (poll(p, 2, -1) < 0)
		if (errno != EINTR)
			return -1;
	if (p[1].revents)
		return -1;
	return recv(cfd, buf, cap, 0);
}

static uint32_t fake_connect_errno(struct fake *f, int attempt)
{
	if (f->refuse_ms > 0) {
		struct timespec t;
		int64_t el;

		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (t.tv_sec - f->start.tv_sec) * 1000 + (t.tv_nsec - f->start.tv_nsec) / 1000000;
		return el < f->refuse_ms ? f->refuse_errno : 0;
	}
	if (f->refuse_count < 0 || attempt <= f->refuse_count)
		return f->refuse_errno;
	return 0;
}

static bool fake_handshake(struct fake *f, int cfd)
{
	uint8_t guid[16], reply[12] = {0};
	int attempt;
	uint32_t e;

	if (fake_recv(f, cfd, guid, sizeof(guid)) != (ssize_t)sizeof(guid))
		return false;
	attempt = atomic_fetch_add(&f->attempts, 1) + 1;
	memcpy(f->guid, guid, sizeof(guid));
	e = fake_connect_errno(f, attempt);
	for (int i = 0; i < 4; i++) {
		reply[i] = (uint8_t)(e >> (8 * i));
		reply[4 + i] = (uint8_t)(f->mml >> (8 * i));
	}
	reply[8] = f->pv;
	send(cfd, reply, f->short_reply ? 5 : sizeof(reply), MSG_NOSIGNAL);
	if (e != 0)
		return false;
	atomic_fetch_add(&f->accepted, 1);
	if (f->send_stale)
		send(cfd, "stale", 5, MSG_NOSIGNAL);
	return true;
}

static void fake_converse(struct fake *f, int cfd)
{
	static const size_t cap = 65536;
	uint8_t *buf = malloc(cap);
	ssize_t n;

	while (buf && (n = fake_recv(f, cfd, buf, cap)) > 0) {
		atomic_fetch_add(&f->requests, 1);
		switch (f->mode) {
		case FAKE_SILENT:
			break;
		case FAKE_CLOSE_ON_REQUEST:
			if (f->closes > 0) {
				f->closes--;
				free(buf);
				return;
			}
			send(cfd, buf, (size_t)n, MSG_NOSIGNAL);
			break;
		case FAKE_OVERSIZE:
			memset(buf, 0xAB, f->mml + 10);
			send(cfd, buf, f->mml + 10, MSG_NOSIGNAL);
			break;
		case FAKE_DELAYED_ECHO:
			sleep_ms(f->delay_ms);
			send(cfd, buf, (size_t)n, MSG_NOSIGNAL);
			break;
		case FAKE_ECHO:
			send(cfd, buf, (size_t)n, MSG_NOSIGNAL);
			break;
		}
	}
	free(buf);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		struct pollfd p[2] = {{.fd = f->lfd, .events = POLLIN},
		                      {.fd = f->stop[0], .events = POLLIN}};
		int cfd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		cfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		if (fake_handshake(f, cfd))
			fake_converse(f, cfd);
		close(cfd);
	}
	return NULL;
}

static void fake_start(struct fake *f)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	clock_gettime(CLOCK_MONOTONIC, &f->start);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
	f->running = true;
}

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	f->lfd = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/mei-transport-XXXXXX");
	if (!mkdtemp(f->dir) || pipe2(f->stop, O_CLOEXEC) != 0)
		return -1;
	snprintf(f->sock, sizeof(f->sock), "%s/mei.sock", f->dir);
	snprintf(f->device, sizeof(f->device), "unix:%s", f->sock);
	snprintf(f->sysfs, sizeof(f->sysfs), "%s/sys", f->dir);
	if (mkdir(f->sysfs, 0700) != 0)
		return -1;
	f->mode = FAKE_ECHO;
	f->mml = 512;
	f->pv = 4;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	if (f->running) {
		(void)!write(f->stop[1], "x", 1);
		pthread_join(f->thread, NULL);
	}
	if (f->lfd >= 0)
		close(f->lfd);
	close(f->stop[0]);
	close(f->stop[1]);
	/* the whole directory: a failed assertion may have left sysfs files behind */
	if (fixture_remove_tree(f->dir) != 0) {
		free(f);
		return -1;
	}
	free(f);
	return 0;
}

static struct mei_dev *open_ok(struct fake *f)
{
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev = NULL;

	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), 0);
	assert_non_null(dev);
	return dev;
}

/* ---- constants ---- */

static void test_guids_are_in_wire_order(void **state)
{
	(void)state;
	const guid_t amthi =
	    UUID_LE(0x12F80028, 0xB4B7, 0x4B2D, 0xAC, 0xA8, 0x46, 0xE0, 0xFF, 0x65, 0x81, 0x4C);
	const guid_t lme =
	    UUID_LE(0x6733A4DB, 0x0476, 0x4E7B, 0xB3, 0xAF, 0xBC, 0xFC, 0x29, 0xBE, 0xE7, 0xA7);
	const guid_t wd =
	    UUID_LE(0x05B79A6F, 0x4628, 0x4D7F, 0x89, 0x9D, 0xA9, 0x15, 0x14, 0xCB, 0x32, 0xAB);
	const uint8_t amthi_wire[16] = {0x28, 0x00, 0xf8, 0x12, 0xb7, 0xb4, 0x2d, 0x4b,
	                                0xac, 0xa8, 0x46, 0xe0, 0xff, 0x65, 0x81, 0x4c};

	assert_memory_equal(MEI_GUID_AMTHI, amthi_wire, 16);
	assert_memory_equal(MEI_GUID_AMTHI, amthi.b, 16);
	assert_memory_equal(MEI_GUID_LME, lme.b, 16);
	assert_memory_equal(MEI_GUID_WATCHDOG, wd.b, 16);
}

static void test_strerror_names_every_kind(void **state)
{
	(void)state;
	assert_string_equal(mei_strerror(0), "success");
	assert_string_equal(mei_strerror(2), "AMT status 2 (NOT_READY)");
	assert_string_equal(mei_strerror(2068), "AMT status 2068 (NOT_FOUND)");
	assert_string_equal(mei_strerror(9999), "unknown AMT status");
	assert_string_equal(mei_strerror(-9999), "unknown MEI error");
	for (int r = MEI_E_REFUSED; r < 0; r++) {
		assert_non_null(mei_strerror(r));
		assert_string_not_equal(mei_strerror(r), "unknown MEI error");
	}
	assert_string_not_equal(mei_strerror(MEI_E_RESET), mei_strerror(MEI_E_TIMEOUT));
}

static void test_opts_defaults(void **state)
{
	(void)state;
	struct mei_opts o;

	memset(&o, 0xff, sizeof(o));
	mei_opts_default(&o);
	assert_null(o.sysfs_root);
	assert_int_equal(o.ready_ms, 20000);
	assert_int_equal(o.recv_ms, 10000);
	assert_int_equal(o.busy_retries, 5);
	assert_int_equal(o.busy_base_ms, 50);
}

/* ---- connecting ---- */

static void test_connect_and_echo(void **state)
{
	struct fake *f = *state;
	struct mei_dev *dev;
	uint8_t buf[64];
	size_t len = 0;

	fake_start(f);
	dev = open_ok(f);
	assert_int_equal(mei_max_msg_length(dev), 512);
	assert_int_equal(mei_protocol_version(dev), 4);
	assert_int_equal(mei_connect_count(dev), 1);
	assert_true(mei_fd(dev) >= 0);
	assert_memory_equal(f->guid, MEI_GUID_AMTHI, 16);

	assert_int_equal(mei_send(dev, "hello", 5), 0);
	assert_int_equal(mei_recv(dev, buf, sizeof(buf), &len, -1), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "hello", 5);

	assert_int_equal(mei_transact(dev, "again", 5, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "again", 5);
	assert_int_equal(mei_connect_count(dev), 1);
	assert_int_equal(atomic_load(&f->accepted), 1);
	mei_close(dev);
}

static void test_enotty_is_no_client_at_once(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev = (struct mei_dev *)1;

	f->refuse_errno = ENOTTY;
	f->refuse_count = -1;
	fake_start(f);
	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), MEI_E_NO_CLIENT);
	assert_null(dev);
	assert_int_equal(atomic_load(&f->attempts), 1);
}

static void test_ebusy_twice_then_connected(void **state)
{
	struct fake *f = *state;
	struct mei_dev *dev;

	f->refuse_errno = EBUSY;
	f->refuse_count = 2;
	fake_start(f);
	dev = open_ok(f);
	assert_int_equal(atomic_load(&f->attempts), 3);
	assert_int_equal(mei_connect_count(dev), 1);
	mei_close(dev);
}

static void test_ebusy_forever_is_busy_after_bounded_retries(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev;
	int64_t t0 = now_ms(), el;

	f->refuse_errno = EBUSY;
	f->refuse_count = -1;
	fake_start(f);
	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), MEI_E_BUSY);
	el = now_ms() - t0;
	assert_int_equal(atomic_load(&f->attempts), BUSY_TRIES + 1);
	/* exponential: 10 + 20 + 40 ms between the four attempts */
	assert_true(el >= (int64_t)BUSY_BASE * 7);
	assert_true(el < (int64_t)BUSY_BASE * 7 + SLACK_MS);
}

static void test_enodev_for_a_while_then_connected(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev = NULL;
	int64_t t0 = now_ms(), el;

	o.ready_ms = 800;
	f->refuse_errno = ENODEV;
	f->refuse_ms = 200;
	fake_start(f);
	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), 0);
	el = now_ms() - t0;
	assert_true(el >= 200);
	assert_true(el < 800);
	assert_true(atomic_load(&f->attempts) > 1);
	assert_int_equal(mei_connect_count(dev), 1);
	mei_close(dev);
}

static void test_enodev_forever_is_not_ready_after_ready_ms(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev;
	int64_t t0 = now_ms(), el;

	f->refuse_errno = ENODEV;
	f->refuse_count = -1;
	fake_start(f);
	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), MEI_E_NOT_READY);
	el = now_ms() - t0;
	assert_true(el >= READY_MS);
	assert_true(el < READY_MS + SLACK_MS);
	assert_true(atomic_load(&f->attempts) > 2);
}

static void test_malformed_connect_reply_is_protocol_error(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev;

	f->short_reply = true;
	fake_start(f);
	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), MEI_E_PROTOCOL);
}

static void test_zero_max_msg_length_is_protocol_error(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev;

	f->mml = 0;
	fake_start(f);
	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), MEI_E_PROTOCOL);
}

static void test_missing_devices_are_no_device(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev;
	int64_t t0 = now_ms();

	assert_int_equal(mei_open("/nonexistent/mei0", MEI_GUID_AMTHI, &o, &dev), MEI_E_NO_DEVICE);
	assert_int_equal(mei_open("unix:/nonexistent/mei.sock", MEI_GUID_AMTHI, &o, &dev),
	                 MEI_E_NO_DEVICE);
	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), MEI_E_NO_DEVICE);
	assert_true(now_ms() - t0 < 100);
}

static void test_socket_file_nobody_serves_is_no_device(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct mei_dev *dev;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	/* the file stays behind its closed socket: connect() gives ECONNREFUSED */
	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), MEI_E_NO_DEVICE);
}

static void test_kernel_path_reaches_the_connect_ioctl(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev;
	char path[200];
	int fd;

	/* a regular file opens read-write but knows no MEI ioctl: ENOTTY, as a missing client */
	snprintf(path, sizeof(path), "%s/meiF", f->dir);
	fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mei_open(path, MEI_GUID_AMTHI, &o, &dev), MEI_E_NO_CLIENT);
	unlink(path);
}

static void write_file(const char *path, const char *content)
{
	char tmp[300];
	FILE *fp;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	assert_non_null(fp);
	assert_int_not_equal(fputs(content, fp), EOF);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(rename(tmp, path), 0); /* readers never see a half-written state */
}

struct later_write {
	const char *path;
	const char *content;
	int after_ms;
};

static void *write_later(void *arg)
{
	const struct later_write *w = arg;

	sleep_ms(w->after_ms);
	write_file(w->path, w->content);
	return NULL;
}

/* A fake sysfs with dev_state for meiT; PATH gets the dev_state file's path. */
static void make_dev_state(struct fake *f, const char *state, char *path, size_t cap)
{
	char d[200];

	snprintf(d, sizeof(d), "%s/class", f->sysfs);
	assert_int_equal(mkdir(d, 0700), 0);
	snprintf(d, sizeof(d), "%s/class/mei", f->sysfs);
	assert_int_equal(mkdir(d, 0700), 0);
	snprintf(d, sizeof(d), "%s/class/mei/meiT", f->sysfs);
	assert_int_equal(mkdir(d, 0700), 0);
	snprintf(path, cap, "%s/dev_state", d);
	write_file(path, state);
}

static void test_dev_state_initializing_is_not_ready_after_ready_ms(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev;
	char path[256];
	int64_t t0, el;

	make_dev_state(f, "INITIALIZING", path, sizeof(path));
	t0 = now_ms();
	/* the node does not exist either: only waiting first gives NOT_READY here */
	assert_int_equal(mei_open("/nonexistent/meiT", MEI_GUID_AMTHI, &o, &dev), MEI_E_NOT_READY);
	el = now_ms() - t0;
	assert_true(el >= READY_MS);
	assert_true(el < READY_MS + SLACK_MS);
}

static void test_dev_state_enabled_later_ends_the_wait(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev;
	char path[256];
	struct later_write w = {.path = path, .content = "ENABLED", .after_ms = 150};
	pthread_t th;
	int64_t t0, el;

	make_dev_state(f, "INIT_CLIENTS", path, sizeof(path));
	o.ready_ms = 2000;
	t0 = now_ms();
	assert_int_equal(pthread_create(&th, NULL, write_later, &w), 0);
	assert_int_equal(mei_open("/nonexistent/meiT", MEI_GUID_AMTHI, &o, &dev), MEI_E_NO_DEVICE);
	el = now_ms() - t0;
	pthread_join(th, NULL);
	assert_true(el >= 150);
	assert_true(el < 150 + 300);
}

/* ---- conversation ---- */

static void test_no_reply_times_out_on_time(void **state)
{
	struct fake *f = *state;
	struct mei_opts o = test_opts(f);
	struct mei_dev *dev = NULL;
	uint8_t buf[64];
	size_t len;
	int64_t t0, el;

	f->mode = FAKE_SILENT;
	fake_start(f);
	o.recv_ms = 150;
	assert_int_equal(mei_open(f->device, MEI_GUID_AMTHI, &o, &dev), 0);
	assert_int_equal(mei_send(dev, "ping", 4), 0);

	t0 = now_ms();
	assert_int_equal(mei_recv(dev, buf, sizeof(buf), &len, 250), MEI_E_TIMEOUT);
	el = now_ms() - t0;
	assert_true(el >= 250 && el < 250 + SLACK_MS);

	t0 = now_ms();
	assert_int_equal(mei_recv(dev, buf, sizeof(buf), &len, -1), MEI_E_TIMEOUT);
	el = now_ms() - t0;
	assert_true(el >= 150 && el < 150 + SLACK_MS);

	t0 = now_ms();
	assert_int_equal(mei_transact(dev, "ping", 4, buf, sizeof(buf), &len), MEI_E_TIMEOUT);
	el = now_ms() - t0;
	assert_true(el >= 150 && el < 150 + SLACK_MS);
	assert_int_equal(mei_connect_count(dev), 1);
	mei_close(dev);
}

static void test_server_close_is_reset(void **state)
{
	struct fake *f = *state;
	struct mei_dev *dev;
	uint8_t buf[64];
	size_t len;
	int64_t t0;

	f->mode = FAKE_CLOSE_ON_REQUEST;
	f->closes = 1;
	fake_start(f);
	dev = open_ok(f);
	assert_int_equal(mei_send(dev, "ping", 4), 0);
	t0 = now_ms();
	assert_int_equal(mei_recv(dev, buf, sizeof(buf), &len, -1), MEI_E_RESET);
	assert_true(now_ms() - t0 < RECV_MS / 2); /* seen at once, not at the deadline */
	/* writing to the dead connection is a reset too, not SIGPIPE */
	assert_int_equal(mei_send(dev, "ping", 4), MEI_E_RESET);

	assert_int_equal(mei_reconnect(dev), 0);
	assert_int_equal(mei_connect_count(dev), 2);
	assert_int_equal(mei_transact(dev, "pong", 4, buf, sizeof(buf), &len), 0);
	assert_memory_equal(buf, "pong", 4);
	mei_close(dev);
}

static void test_transact_reconnects_once_after_reset(void **state)
{
	struct fake *f = *state;
	struct mei_dev *dev;
	uint8_t buf[64];
	size_t len = 0;

	f->mode = FAKE_CLOSE_ON_REQUEST;
	f->closes = 1;
	fake_start(f);
	dev = open_ok(f);
	assert_int_equal(mei_transact(dev, "request", 7, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "request", 7);
	assert_int_equal(mei_connect_count(dev), 2);
	assert_int_equal(atomic_load(&f->requests), 2);
	mei_close(dev);
}

static void test_transact_gives_up_after_second_reset(void **state)
{
	struct fake *f = *state;
	struct mei_dev *dev;
	uint8_t buf[64];
	size_t len;

	f->mode = FAKE_CLOSE_ON_REQUEST;
	f->closes = 2;
	fake_start(f);
	dev = open_ok(f);
	assert_int_equal(mei_transact(dev, "request", 7, buf, sizeof(buf), &len), MEI_E_RESET);
	assert_int_equal(mei_connect_count(dev), 2);
	assert_int_equal(atomic_load(&f->requests), 2);
	mei_close(dev);
}

static void test_oversized_message_is_too_big(void **state)
{
	struct fake *f = *state;
	struct mei_dev *dev;
	uint8_t buf[4096];
	size_t len;

	f->mode = FAKE_OVERSIZE;
	fake_start(f);
	dev = open_ok(f);
	assert_int_equal(mei_send(dev, "x", 1), 0);
	assert_int_equal(mei_recv(dev, buf, sizeof(buf), &len, -1), MEI_E_TOO_BIG);
	mei_close(dev);
}

static void test_message_larger_than_cap_is_too_big(void **state)
{
	struct fake *f = *state;
	struct mei_dev *dev;
	uint8_t msg[100], buf[100];
	size_t len;

	memset(msg, 0x5A, sizeof(msg));
	fake_start(f);
	dev = open_ok(f);
	assert_int_equal(mei_send(dev, msg, sizeof(msg)), 0);
	assert_int_equal(mei_recv(dev, buf, 50, &len, -1), MEI_E_TOO_BIG);
	/* the message was consumed whole: the next one arrives intact */
	assert_int_equal(mei_send(dev, "next", 4), 0);
	assert_int_equal(mei_recv(dev, buf, sizeof(buf), &len, -1), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(buf, "next", 4);
	mei_close(dev);
}

static void test_stale_message_is_discarded_by_transact(void **state)
{
	struct fake *f = *state;
	struct mei_dev *dev;
	struct pollfd p;
	uint8_t buf[64];
	size_t len = 0;

	f->send_stale = true;
	fake_start(f);
	dev = open_ok(f);
	p = (struct pollfd){.fd = mei_fd(dev), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 1000), 1); /* the stale message is queued */
	assert_int_equal(mei_transact(dev, "fresh", 5, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "fresh", 5);
	mei_close(dev);
}

static void test_send_longer_than_max_is_refused_untouched(void **state)
{
	struct fake *f = *state;
	struct mei_dev *dev;
	uint8_t msg[65], buf[65];
	size_t len;

	memset(msg, 0x11, sizeof(msg));
	f->mml = 64;
	fake_start(f);
	dev = open_ok(f);
	assert_int_equal(mei_send(dev, msg, 65), MEI_E_TOO_BIG);
	assert_int_equal(mei_transact(dev, msg, 65, buf, sizeof(buf), &len), MEI_E_TOO_BIG);
	assert_int_equal(mei_send(dev, msg, 64), 0);
	assert_int_equal(mei_recv(dev, buf, sizeof(buf), &len, -1), 0);
	assert_int_equal(len, 64);
	assert_int_equal(atomic_load(&f->requests), 1);
	mei_close(dev);
}

/* ---- signals ---- */

static volatile sig_atomic_t signals_seen;

static void count_signal(int sig)
{
	(void)sig;
	signals_seen++;
}

struct signaller {
	pthread_t target;
	int count;
	int every_ms;
};

static void *send_signals(void *arg)
{
	const struct signaller *s = arg;

	for (int i = 0; i < s->count; i++) {
		sleep_ms(s->every_ms);
		pthread_kill(s->target, SIGUSR1);
	}
	return NULL;
}

/* A handler without SA_RESTART makes poll() fail with EINTR. */
static void install_handler(struct sigaction *old)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = count_signal;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, old), 0);
	signals_seen = 0;
}

static void test_recv_resumes_after_signals(void **state)
{
	struct fake *f = *state;
	struct signaller s = {.target = pthread_self(), .count = 6, .every_ms = 30};
	struct sigaction old;
	struct mei_dev *dev;
	pthread_t th;
	uint8_t buf[64];
	size_t len = 0;
	int64_t t0, el;
	int r;

	f->mode = FAKE_DELAYED_ECHO;
	f->delay_ms = 300;
	fake_start(f);
	dev = open_ok(f);
	install_handler(&old);
	assert_int_equal(mei_send(dev, "slow", 4), 0);
	t0 = now_ms();
	assert_int_equal(pthread_create(&th, NULL, send_signals, &s), 0);
	r = mei_recv(dev, buf, sizeof(buf), &len, 2000);
	el = now_ms() - t0;
	/* no assertion before the signaller is done: a failed one would leave it running */
	pthread_join(th, NULL);
	sigaction(SIGUSR1, &old, NULL);

	assert_int_equal(r, 0);
	assert_true(signals_seen >= 1);
	assert_int_equal(len, 4);
	assert_memory_equal(buf, "slow", 4);
	assert_true(el >= 250 && el < 300 + SLACK_MS);
	mei_close(dev);
}

static void test_timeout_counts_time_left_across_signals(void **state)
{
	struct fake *f = *state;
	struct signaller s = {.target = pthread_self(), .count = 7, .every_ms = 40};
	struct sigaction old;
	struct mei_dev *dev;
	pthread_t th;
	uint8_t buf[64];
	size_t len;
	int64_t t0, el;
	int r;

	f->mode = FAKE_SILENT;
	fake_start(f);
	dev = open_ok(f);
	install_handler(&old);
	t0 = now_ms();
	assert_int_equal(pthread_create(&th, NULL, send_signals, &s), 0);
	r = mei_recv(dev, buf, sizeof(buf), &len, 300);
	el = now_ms() - t0;
	pthread_join(th, NULL);
	sigaction(SIGUSR1, &old, NULL);

	assert_int_equal(r, MEI_E_TIMEOUT);
	assert_true(signals_seen >= 1);
	assert_true(el >= 300 && el < 300 + SLACK_MS);
	mei_close(dev);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_guids_are_in_wire_order),
	    cmocka_unit_test(test_strerror_names_every_kind),
	    cmocka_unit_test(test_opts_defaults),
	    T(test_connect_and_echo),
	    T(test_enotty_is_no_client_at_once),
	    T(test_ebusy_twice_then_connected),
	    T(test_ebusy_forever_is_busy_after_bounded_retries),
	    T(test_enodev_for_a_while_then_connected),
	    T(test_enodev_forever_is_not_ready_after_ready_ms),
	    T(test_malformed_connect_reply_is_protocol_error),
	    T(test_zero_max_msg_length_is_protocol_error),
	    T(test_missing_devices_are_no_device),
	    T(test_socket_file_nobody_serves_is_no_device),
	    T(test_kernel_path_reaches_the_connect_ioctl),
	    T(test_dev_state_initializing_is_not_ready_after_ready_ms),
	    T(test_dev_state_enabled_later_ends_the_wait),
	    T(test_no_reply_times_out_on_time),
	    T(test_server_close_is_reset),
	    T(test_transact_reconnects_once_after_reset),
	    T(test_transact_gives_up_after_second_reset),
	    T(test_oversized_message_is_too_big),
	    T(test_message_larger_than_cap_is_too_big),
	    T(test_stale_message_is_discarded_by_transact),
	    T(test_send_longer_than_max_is_refused_untouched),
	    T(test_recv_resumes_after_signals),
	    T(test_timeout_counts_time_left_across_signals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
