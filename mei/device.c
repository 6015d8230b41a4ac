/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device transport: one connection to one ME client, over the kernel's MEI character device
 * or over "unix:PATH", the emulator's SOCK_SEQPACKET socket (convention in tests/amtsim/amtsim.h).
 * The two differ only in how a connection is made and in the calls that move one message; the
 * waiting, retrying and errno mapping are shared.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mei.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mei.h"
#include "wire.h"

#define UNIX_PREFIX            "unix:"
#define UNIX_CONNECT_REPLY_LEN 12u
#define GUID_LEN               16u

/* No client of interest comes near this; a larger value is taken for garbage. */
#define MAX_MSG_LENGTH_LIMIT (1u << 20)

#define NOT_READY_FIRST_MS  20
#define NOT_READY_MAX_MS    200
#define DEV_STATE_FIRST_MS  50
#define DEV_STATE_MAX_MS    200
#define BUSY_MAX_BACKOFF_MS 5000
#define DRAIN_MAX           64 /* stale messages discarded before a request, at most */

/* Internal outcomes, positive so they never mix with enum mei_err. */
#define READ_AGAIN  1 /* read_message(): the descriptor had nothing after all; poll again */
#define INTERRUPTED 2 /* a connect attempt was interrupted by a signal; start it again */

struct mei_dev {
	char *device; /* as given, "unix:" included */
	bool is_unix;
	uint8_t guid[GUID_LEN];
	struct mei_opts opts;
	char *sysfs_root; /* owned copy behind opts.sysfs_root */
	int fd;           /* -1 while not connected */
	uint32_t max_msg_length;
	uint8_t protocol_version;
	unsigned connects;
	uint8_t *rbuf; /* a whole message always fits: SEQPACKET drops what does not */
	size_t rbuf_cap;
};

_Static_assert(sizeof(struct mei_connect_client_data) == GUID_LEN, "kernel connect data");

/* ---- time ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_after(int ms)
{
	return now_ms() + (ms > 0 ? ms : 0);
}

static int ms_left(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static int min_int(int a, int b)
{
	return a < b ? a : b;
}

/* Sleeps the whole time even when signals arrive. */
static void sleep_ms(int ms)
{
	struct timespec until;

	if (ms <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
		;
}

/* ---- errno mapping ---- */

static int map_io_errno(int e)
{
	switch (e) {
	case ENODEV:
	case EPIPE:
	case ECONNRESET:
	case ENOTCONN:
	case ESHUTDOWN:
		return MEI_E_RESET;
	case EFBIG:
	case EMSGSIZE:
		return MEI_E_TOO_BIG;
	case ETIME:
	case ETIMEDOUT:
		return MEI_E_TIMEOUT;
	case EACCES:
	case EPERM:
		return MEI_E_ACCESS;
	case ENOMEM:
		return MEI_E_NOMEM;
	default:
		return MEI_E_IO;
	}
}

static int map_open_errno(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
	case ENXIO:
	case ECONNREFUSED: /* a socket file nobody serves */
		return MEI_E_NO_DEVICE;
	case ENODEV:
		return MEI_E_NOT_READY;
	default:
		return map_io_errno(e);
	}
}

static int map_connect_errno(int e)
{
	switch (e) {
	case ENOTTY:
		return MEI_E_NO_CLIENT;
	case EBUSY:
		return MEI_E_BUSY;
	case ENODEV:
		return MEI_E_NOT_READY;
	case EFAULT: /* the kernel's answer when the ME does not reply to a connect in time */
		return MEI_E_TIMEOUT;
	default:
		return map_io_errno(e);
	}
}

/* ---- one message ---- */

/* Until FD has a message (0), the deadline passes, or the connection is gone. */
static int wait_message(int fd, bool is_unix, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, ms_left(deadline));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return MEI_E_IO;
		if (n == 0)
			return MEI_E_TIMEOUT;
		if (p.revents & POLLNVAL)
			return MEI_E_IO;
		/* A socket still hands out what was queued before the peer closed; the kernel
		 * device sets POLLERR when the client is no longer connected. */
		if ((p.revents & POLLIN) && (is_unix || !(p.revents & POLLERR)))
			return 0;
		return MEI_E_RESET;
	}
}

static int read_unix_message(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	do
		n = recvmsg(fd, &mh, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? READ_AGAIN : map_io_errno(errno);
	if (n == 0)
		return MEI_E_RESET; /* the emulator closed: a firmware reset */
	if (mh.msg_flags & MSG_TRUNC)
		return MEI_E_TOO_BIG;
	*len = (size_t)n;
	return 0;
}

static int read_kernel_message(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	ssize_t n;

	do
		n = read(fd, buf, cap);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? READ_AGAIN : map_io_errno(errno);
	*len = (size_t)n;
	return 0;
}

static int read_message(int fd, bool is_unix, uint8_t *buf, size_t cap, size_t *len)
{
	return is_unix ? read_unix_message(fd, buf, cap, len)
	               : read_kernel_message(fd, buf, cap, len);
}

/* One whole message into BUF (CAP bytes) before DEADLINE. */
static int receive(int fd, bool is_unix, uint8_t *buf, size_t cap, size_t *len, int64_t deadline)
{
	for (;;) {
		int r = wait_message(fd, is_unix, deadline);

		if (r == 0)
			r = read_message(fd, is_unix, buf, cap, len);
		if (r != READ_AGAIN)
			return r;
	}
}

static int write_message(int fd, bool is_unix, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = is_unix ? send(fd, buf, len, MSG_NOSIGNAL) : write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return map_io_errno(errno);
	return (size_t)n == len ? 0 : MEI_E_IO;
}

/* ---- connecting ---- */

struct client_props {
	uint32_t max_msg_length;
	uint8_t protocol_version;
};

static int open_kernel_once(const struct mei_dev *d, int *fd_out, struct client_props *props)
{
	struct mei_connect_client_data data;
	int fd;

	do
		fd = open(d->device, O_RDWR | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return map_open_errno(errno);
	memset(&data, 0, sizeof(data));
	memcpy(data.in_client_uuid.b, d->guid, GUID_LEN);
	if (ioctl(fd, IOCTL_MEI_CONNECT_CLIENT, &data) != 0) {
		/* EINTR included: an interrupted connect leaves the fd in no known state */
		int r = errno == EINTR ? INTERRUPTED : map_connect_errno(errno);

		close(fd);
		return r;
	}
	props->max_msg_length = data.out_client_properties.max_msg_length;
	props->protocol_version = data.out_client_properties.protocol_version;
	*fd_out = fd;
	return 0;
}

static int connect_kernel(const struct mei_dev *d, int *fd_out, struct client_props *props)
{
	int r;

	do
		r = open_kernel_once(d, fd_out, props);
	while (r == INTERRUPTED);
	return r;
}

static int parse_unix_connect_reply(const uint8_t *buf, size_t len, struct client_props *props)
{
	struct cursor c = cursor_init(buf, len);
	uint32_t err;
	int r = cur_u32le(&c, &err);

	if (r == 0)
		r = cur_u32le(&c, &props->max_msg_length);
	if (r == 0)
		r = cur_u8(&c, &props->protocol_version);
	if (r == 0)
		r = cur_skip(&c, 3);
	if (r == 0)
		r = cur_end(&c);
	if (r < 0)
		return r;
	if (err == 0)
		return 0;
	return err > INT_MAX ? MEI_E_PROTOCOL : map_connect_errno((int)err);
}

static int socket_connect(int fd, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sa.sun_path))
		return MEI_E_NO_DEVICE;
	memcpy(sa.sun_path, path, n + 1);
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0)
		return errno == EINTR ? INTERRUPTED : map_open_errno(errno);
	return 0;
}

/* The GUID goes out as the first message; the reply carries errno and client properties. */
static int unix_handshake(const struct mei_dev *d, int fd, struct client_props *props)
{
	uint8_t reply[UNIX_CONNECT_REPLY_LEN + 1];
	size_t len = 0;
	int r = socket_connect(fd, d->device + strlen(UNIX_PREFIX));

	if (r == 0)
		r = write_message(fd, true, d->guid, GUID_LEN);
	if (r == 0)
		r = receive(fd, true, reply, sizeof(reply), &len, deadline_after(d->opts.recv_ms));
	if (r == MEI_E_TOO_BIG)
		r = MEI_E_PROTOCOL;
	if (r == 0)
		r = parse_unix_connect_reply(reply, len, props);
	return r;
}

static int connect_unix(const struct mei_dev *d, int *fd_out, struct client_props *props)
{
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		int r;

		if (fd < 0)
			return map_io_errno(errno);
		r = unix_handshake(d, fd, props);
		if (r == 0) {
			*fd_out = fd;
			return 0;
		}
		close(fd);
		if (r != INTERRUPTED)
			return r;
	}
}

static const char *device_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/*
 * At boot the device node can exist before the ME has enumerated its clients, and a connect
 * then fails as if AMT were absent: wait while dev_state names any state but ENABLED. Without
 * a readable dev_state there is nothing to wait for.
 */
static int wait_dev_state_enabled(const struct mei_dev *d, int64_t deadline)
{
	const char *name = device_basename(d->device);
	int step = DEV_STATE_FIRST_MS;

	for (;;) {
		char state[32];
		int left, r;

		r = mei_sysfs_read_dev_state(d->opts.sysfs_root, name, state, sizeof(state));
		if (r < 0 || strcmp(state, "ENABLED") == 0)
			return 0;
		left = ms_left(deadline);
		if (left == 0)
			return MEI_E_NOT_READY;
		sleep_ms(min_int(step, left));
		step = min_int(step * 2, DEV_STATE_MAX_MS);
	}
}

static int busy_backoff_ms(int base, int attempt)
{
	int ms = base > 0 ? base : 0;

	for (int i = 0; i < attempt && ms < BUSY_MAX_BACKOFF_MS; i++)
		ms *= 2;
	return min_int(ms, BUSY_MAX_BACKOFF_MS);
}

static int adopt_connection(struct mei_dev *d, int fd, const struct client_props *props)
{
	if (props->max_msg_length == 0 || props->max_msg_length > MAX_MSG_LENGTH_LIMIT) {
		close(fd);
		return MEI_E_PROTOCOL;
	}
	if (d->rbuf_cap < props->max_msg_length) {
		uint8_t *b = realloc(d->rbuf, props->max_msg_length);

		if (!b) {
			close(fd);
			return MEI_E_NOMEM;
		}
		d->rbuf = b;
		d->rbuf_cap = props->max_msg_length;
	}
	d->fd = fd;
	d->max_msg_length = props->max_msg_length;
	d->protocol_version = props->protocol_version;
	d->connects++;
	return 0;
}

static int connect_once(const struct mei_dev *d, int *fd, struct client_props *props)
{
	return d->is_unix ? connect_unix(d, fd, props) : connect_kernel(d, fd, props);
}

/* ENODEV is retried until the ready deadline, EBUSY busy_retries times; nothing else is. */
static int connect_with_retries(struct mei_dev *d)
{
	int64_t ready_deadline = deadline_after(d->opts.ready_ms);
	int not_ready_step = NOT_READY_FIRST_MS;
	int busy_attempts = 0;
	int r = d->is_unix ? 0 : wait_dev_state_enabled(d, ready_deadline);

	while (r == 0) {
		struct client_props props = {0};
		int fd = -1, left;

		r = connect_once(d, &fd, &props);
		if (r == 0)
			return adopt_connection(d, fd, &props);
		if (r == MEI_E_NOT_READY && (left = ms_left(ready_deadline)) > 0) {
			sleep_ms(min_int(not_ready_step, left));
			not_ready_step = min_int(not_ready_step * 2, NOT_READY_MAX_MS);
			r = 0;
		} else if (r == MEI_E_BUSY && busy_attempts < d->opts.busy_retries) {
			sleep_ms(busy_backoff_ms(d->opts.busy_base_ms, busy_attempts++));
			r = 0;
		}
	}
	return r;
}

static void disconnect(struct mei_dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* ---- public ---- */

void mei_opts_default(struct mei_opts *o)
{
	*o = (struct mei_opts){
	    .sysfs_root = NULL,
	    .ready_ms = 20000,
	    .recv_ms = 10000,
	    .busy_retries = 5,
	    .busy_base_ms = 50,
	};
}

static int copy_settings(struct mei_dev *d, const char *device, const struct mei_opts *o)
{
	d->device = strdup(device);
	if (!d->device)
		return MEI_E_NOMEM;
	d->is_unix = strncmp(device, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0;
	if (o)
		d->opts = *o;
	else
		mei_opts_default(&d->opts);
	if (d->opts.sysfs_root) {
		d->sysfs_root = strdup(d->opts.sysfs_root);
		if (!d->sysfs_root)
			return MEI_E_NOMEM;
		d->opts.sysfs_root = d->sysfs_root;
	}
	return 0;
}

int mei_open(const char *device, const uint8_t guid[16], const struct mei_opts *o,
             struct mei_dev **out)
{
	struct mei_dev *d;
	int r;

	if (!out)
		return MEI_E_IO;
	*out = NULL;
	if (!device || !guid)
		return MEI_E_IO;
	d = calloc(1, sizeof(*d));
	if (!d)
		return MEI_E_NOMEM;
	d->fd = -1;
	memcpy(d->guid, guid, GUID_LEN);
	r = copy_settings(d, device, o);
	if (r == 0)
		r = connect_with_retries(d);
	if (r < 0) {
		mei_close(d);
		return r;
	}
	*out = d;
	return 0;
}

void mei_close(struct mei_dev *dev)
{
	if (!dev)
		return;
	disconnect(dev);
	free(dev->rbuf);
	free(dev->sysfs_root);
	free(dev->device);
	free(dev);
}

int mei_reconnect(struct mei_dev *dev)
{
	if (!dev)
		return MEI_E_IO;
	disconnect(dev);
	return connect_with_retries(dev);
}

uint32_t mei_max_msg_length(const struct mei_dev *dev)
{
	return dev ? dev->max_msg_length : 0;
}

uint8_t mei_protocol_version(const struct mei_dev *dev)
{
	return dev ? dev->protocol_version : 0;
}

unsigned mei_connect_count(const struct mei_dev *dev)
{
	return dev ? dev->connects : 0;
}

int mei_fd(const struct mei_dev *dev)
{
	return dev ? dev->fd : -1;
}

int mei_send(struct mei_dev *dev, const void *buf, size_t len)
{
	if (!dev || (!buf && len > 0))
		return MEI_E_IO;
	if (len > dev->max_msg_length)
		return MEI_E_TOO_BIG;
	if (dev->fd < 0)
		return MEI_E_RESET; /* a reconnect after a reset failed */
	return write_message(dev->fd, dev->is_unix, buf, len);
}

int mei_recv(struct mei_dev *dev, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	size_t n = 0;
	int r;

	if (!dev || (!buf && cap > 0) || !len)
		return MEI_E_IO;
	if (dev->fd < 0)
		return MEI_E_RESET;
	r = receive(dev->fd, dev->is_unix, dev->rbuf, dev->max_msg_length, &n,
	            deadline_after(timeout_ms < 0 ? dev->opts.recv_ms : timeout_ms));
	if (r < 0)
		return r;
	if (n > cap)
		return MEI_E_TOO_BIG;
	if (n > 0)
		memcpy(buf, dev->rbuf, n);
	*len = n;
	return 0;
}

/* Replies to requests that timed out earlier must not be taken for the next one's. */
static int drain_stale(struct mei_dev *dev)
{
	for (int i = 0; i < DRAIN_MAX; i++) {
		size_t n;
		int r =
		    receive(dev->fd, dev->is_unix, dev->rbuf, dev->max_msg_length, &n, now_ms());

		if (r == MEI_E_TIMEOUT)
			return 0;
		if (r < 0 && r != MEI_E_TOO_BIG)
			return r;
	}
	return 0;
}

static int transact_once(struct mei_dev *dev, const void *req, size_t req_len, void *resp,
                         size_t cap, size_t *resp_len)
{
	int r = dev->fd < 0 ? MEI_E_RESET : drain_stale(dev);

	if (r == 0)
		r = mei_send(dev, req, req_len);
	if (r == 0)
		r = mei_recv(dev, resp, cap, resp_len, -1);
	return r;
}

int mei_transact(struct mei_dev *dev, const void *req, size_t req_len, void *resp, size_t cap,
                 size_t *resp_len)
{
	int r;

	if (!dev)
		return MEI_E_IO;
	r = transact_once(dev, req, req_len, resp, cap, resp_len);
	if (r != MEI_E_RESET)
		return r;
	r = mei_reconnect(dev);
	if (r == 0)
		r = transact_once(dev, req, req_len, resp, cap, resp_len);
	return r;
}
