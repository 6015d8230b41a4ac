/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal MEI client written the way unmodified tools are (plain open/ioctl/write/poll/read on
 * /dev/mei0, nothing from this project), run under "amtsim --run" to prove the umockdev path.
 *
 *   test_umock_client [--device PATH] [--guid GUID] [--expect-errno NAME] [--bufsize N]
 *                     [--timeout MS] [--expect-timeout] [--expect-reset]
 *                     [--watchdog [--watchdog-state BYTE]] [--wait-enabled]
 *
 * Default: connect to AMTHI, send GetCodeVersions, poll, read the reply (in parts when --bufsize
 * is smaller than it), print its header, exit 0 when the reply is valid.
 *   --guid/--expect-errno  connect to GUID and expect the ioctl to fail with errno NAME
 *   --expect-timeout       expect poll() to time out (no reply queued), exit 0 if it does
 *   --expect-reset         expect a firmware reset instead of the reply: poll() wakes, read()
 *                          gives ENODEV; then connect again on the same fd and ask once more
 *   --watchdog             also connect to the watchdog client on a second fd and ask
 *                          IsChangeToAMTEnabled, checking that each fd polls only for its own reply
 *                          (and, with --watchdog-state, that the reply's first byte is BYTE)
 *   --wait-enabled         first print dev_state as it changes until it reads ENABLED
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/mei.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AMTHI_GUID    "12F80028-B4B7-4B2D-ACA8-46E0FF65814C"
#define WATCHDOG_GUID "05B79A6F-4628-4D7F-899D-A91514CB32AB"

static const char *device = "/dev/mei0";
static int timeout_ms = 5000;
static int watchdog_state = -1;

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", hex digits in either case */
static int parse_guid(const char *s, uint8_t out[16])
{
	uint8_t v[16];
	size_t n = 0;

	if (strlen(s) != 36)
		return -1;
	for (size_t i = 0; i < 36;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i++] != '-')
				return -1;
			continue;
		}
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		v[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	/* wire order: the first three fields little-endian */
	static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
	for (int i = 0; i < 16; i++)
		out[i] = (uint8_t)v[order[i]];
	return 0;
}

static const struct {
	const char *name;
	int value;
} errnames[] = {
	{"ENOTTY", ENOTTY}, {"EBUSY", EBUSY}, {"ENODEV", ENODEV}, {"ENOENT", ENOENT},
	{"EFBIG", EFBIG},   {"EACCES", EACCES},
};

static const char *errname(int e)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].value == e)
			return errnames[i].name;
	return "E?";
}

/* Open DEVICE and connect to GUID: the fd, or -1 with errno set (printed by the caller). */
static int mei_connect(const char *guid_text, uint32_t *max_len, uint8_t *version)
{
	struct mei_connect_client_data data;
	uint8_t guid[16];

	if (parse_guid(guid_text, guid) < 0) {
		fprintf(stderr, "bad GUID %s\n", guid_text);
		exit(2);
	}
	int fd = open(device, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", device, strerror(errno));
		return -1;
	}
	memset(&data, 0, sizeof(data));
	memcpy(&data.in_client_uuid, guid, sizeof(guid));
	if (ioctl(fd, IOCTL_MEI_CONNECT_CLIENT, &data) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	*max_len = data.out_client_properties.max_msg_length;
	*version = data.out_client_properties.protocol_version;
	return fd;
}

/* poll() FD for input: 1 readable, 0 timeout, -1 error. */
static int wait_in(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r > 0 && !(p.revents & POLLIN))
		return -1;
	return r;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool wait_enabled(void)
{
	char last[64] = "";
	struct timespec nap = {0, 20L * 1000 * 1000};

	for (int i = 0; i < 500; i++) {
		char buf[64] = "";
		int fd = open("/sys/class/mei/mei0/dev_state", O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "open dev_state: %s\n", strerror(errno));
			return false;
		}
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		if (strcmp(buf, last) != 0) {
			printf("dev_state: %s\n", buf);
			(void)fflush(stdout);
			snprintf(last, sizeof(last), "%s", buf);
		}
		if (strcmp(buf, "ENABLED") == 0)
			return true;
		nanosleep(&nap, NULL);
	}
	fprintf(stderr, "dev_state never read ENABLED\n");
	return false;
}

static int watchdog_open(void)
{
	uint32_t max_len;
	uint8_t version;
	int fd = mei_connect(WATCHDOG_GUID, &max_len, &version);

	if (fd < 0) {
		fprintf(stderr, "watchdog connect: %s\n", strerror(errno));
		return -1;
	}
	printf("watchdog connect: max_msg_length=%u protocol_version=%u\n", max_len, version);
	static const uint8_t req[4] = {0x05, 0x02, 0x51, 0x10}; /* IsChangeToAMTEnabled */
	if (write(fd, req, sizeof(req)) != (ssize_t)sizeof(req)) {
		fprintf(stderr, "watchdog write: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static bool watchdog_finish(int fd)
{
	uint8_t buf[256];

	if (wait_in(fd, timeout_ms) != 1) {
		fprintf(stderr, "watchdog: no reply\n");
		return false;
	}
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 1) {
		fprintf(stderr, "watchdog read: %s\n", n < 0 ? strerror(errno) : "empty");
		return false;
	}
	printf("watchdog reply: size=%zd first=0x%02X\n", n, buf[0]);
	if (watchdog_state >= 0 && buf[0] != watchdog_state) {
		fprintf(stderr, "watchdog state 0x%02X, expected 0x%02X\n", buf[0], watchdog_state);
		return false;
	}
	if (wait_in(fd, 0) != 0) {
		fprintf(stderr, "watchdog fd still polls readable after its reply was read\n");
		return false;
	}
	return true;
}

/*
 * Read one reply of at most MAX_LEN bytes into MSG, CAP bytes per read(); GOT and PARTS say how
 * many bytes and reads. False (after saying why) when a read fails, the reply is too long or
 * too short, or the fd still polls readable after it.
 */
static bool read_reply(int fd, uint8_t *msg, size_t max_len, size_t cap, size_t *got, int *parts)
{
	uint8_t *part = malloc(cap ? cap : 1);
	bool ok = false;

	if (!part)
		return false;
	for (;;) {
		ssize_t n = read(fd, part, cap);
		if (n < 0) {
			fprintf(stderr, "read: %s (%s)\n", strerror(errno), errname(errno));
			goto out;
		}
		if (n == 0) {
			fprintf(stderr, "read returned 0\n");
			goto out;
		}
		if (*got + (size_t)n > max_len) {
			fprintf(stderr, "reply longer than max_msg_length\n");
			goto out;
		}
		memcpy(msg + *got, part, (size_t)n);
		*got += (size_t)n;
		(*parts)++;
		if ((size_t)n < cap || *got >= 12 + (size_t)le32(msg + 8))
			break;
		/* a full buffer: the rest (if any) must be pollable right away */
		if (wait_in(fd, 0) != 1)
			break;
	}
	if (wait_in(fd, 0) != 0) {
		fprintf(stderr, "fd still polls readable after the whole reply was read\n");
		goto out;
	}
	if (*got < 16) {
		fprintf(stderr, "reply of %zu bytes is too short\n", *got);
		goto out;
	}
	ok = true;
out:
	free(part);
	return ok;
}

int main(int argc, char **argv)
{
	const char *guid = AMTHI_GUID;
	const char *expect_errno = NULL;
	size_t bufsize = 0;
	bool expect_timeout = false, expect_reset = false, watchdog = false, enabled = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool v = i + 1 < argc; /* a value follows */
		if (!strcmp(a, "--device") && v)
			device = argv[++i];
		else if (!strcmp(a, "--guid") && v)
			guid = argv[++i];
		else if (!strcmp(a, "--expect-errno") && v)
			expect_errno = argv[++i];
		else if (!strcmp(a, "--bufsize") && v)
			bufsize = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--timeout") && v)
			timeout_ms = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(a, "--expect-timeout"))
			expect_timeout = true;
		else if (!strcmp(a, "--expect-reset"))
			expect_reset = true;
		else if (!strcmp(a, "--watchdog"))
			watchdog = true;
		else if (!strcmp(a, "--watchdog-state") && v)
			watchdog_state = (int)strtol(argv[++i], NULL, 0);
		else if (!strcmp(a, "--wait-enabled"))
			enabled = true;
		else {
			fprintf(stderr, "usage: see the comment at the top of test_umock_client.c\n");
			return 2;
		}
	}

	if (enabled && !wait_enabled())
		return 1;

	uint32_t max_len = 0;
	uint8_t version = 0;
	int fd = mei_connect(guid, &max_len, &version);
	if (expect_errno) {
		if (fd >= 0) {
			fprintf(stderr, "connect to %s succeeded, expected %s\n", guid, expect_errno);
			return 1;
		}
		printf("connect %s: %s\n", guid, errname(errno));
		return strcmp(errname(errno), expect_errno) == 0 ? 0 : 1;
	}
	if (fd < 0) {
		fprintf(stderr, "connect %s: %s (%s)\n", guid, strerror(errno), errname(errno));
		return 1;
	}
	printf("connect: max_msg_length=%u protocol_version=%u\n", max_len, version);

	struct stat st;
	if (fstat(fd, &st) == 0)
		printf("device: %s\n", S_ISCHR(st.st_mode) ? "character" : "not a character device");

	int wd = -1;
	if (watchdog) {
		wd = watchdog_open();
		if (wd < 0)
			return 1;
		/* the watchdog's reply is queued now: it must not make the AMTHI fd readable */
		if (wait_in(wd, timeout_ms) != 1) {
			fprintf(stderr, "watchdog fd does not poll readable with its reply queued\n");
			return 1;
		}
		int r = wait_in(fd, 100);
		printf("amthi poll while the watchdog reply waits: %d\n", r);
		if (r != 0)
			return 1;
	}

	if (wait_in(fd, 0) != 0) {
		fprintf(stderr, "fd polls readable before any request\n");
		return 1;
	}
	static const uint8_t req[12] = {0x01, 0x01, 0x00, 0x00, 0x1A, 0x00,
					0x00, 0x04, 0x00, 0x00, 0x00, 0x00};
	ssize_t w = write(fd, req, sizeof(req));
	if (w != (ssize_t)sizeof(req)) {
		fprintf(stderr, "write: %s\n", w < 0 ? strerror(errno) : "short");
		return 1;
	}

	int pr = wait_in(fd, timeout_ms);
	if (expect_reset) {
		uint8_t b[64];
		if (pr != 1) {
			fprintf(stderr, "poll after the reset: %d\n", pr);
			return 1;
		}
		ssize_t n = read(fd, b, sizeof(b));
		printf("read after the reset: %zd %s\n", n, n < 0 ? errname(errno) : "");
		if (n >= 0 || errno != ENODEV)
			return 1;
		if (write(fd, req, sizeof(req)) >= 0 || errno != ENODEV) {
			fprintf(stderr, "write after the reset did not fail with ENODEV\n");
			return 1;
		}
		/* connect again on the same fd, retrying while the ME comes back (ENODEV) */
		struct mei_connect_client_data data;
		int r = -1;
		for (int i = 0; i < 250 && r < 0; i++) {
			memset(&data, 0, sizeof(data));
			(void)parse_guid(guid, (uint8_t *)&data.in_client_uuid);
			r = ioctl(fd, IOCTL_MEI_CONNECT_CLIENT, &data);
			if (r < 0 && errno != ENODEV)
				break;
			if (r < 0)
				usleep(20000);
		}
		if (r < 0) {
			fprintf(stderr, "reconnect: %s\n", strerror(errno));
			return 1;
		}
		printf("reconnected: max_msg_length=%u\n", data.out_client_properties.max_msg_length);
		if (wait_in(fd, 0) != 0) {
			fprintf(stderr, "fd polls readable right after the reconnect\n");
			return 1;
		}
		if (write(fd, req, sizeof(req)) != (ssize_t)sizeof(req)) {
			fprintf(stderr, "write after the reconnect: %s\n", strerror(errno));
			return 1;
		}
		pr = wait_in(fd, timeout_ms);
	} else if (expect_timeout) {
		printf("poll: %d\n", pr);
		return pr == 0 ? 0 : 1;
	}
	if (pr != 1) {
		fprintf(stderr, "poll: %s\n", pr == 0 ? "timed out" : strerror(errno));
		return 1;
	}

	/* read the reply, in parts when the buffer is smaller than it */
	size_t cap = bufsize ? bufsize : max_len;
	uint8_t *msg = malloc(max_len + 1);
	size_t got = 0;
	int parts = 0;
	if (!msg || !read_reply(fd, msg, max_len, cap, &got, &parts)) {
		free(msg);
		return 1;
	}
	uint32_t cmd = le32(msg + 4), len = le32(msg + 8), status = le32(msg + 12);
	unsigned reserved = (unsigned)msg[2] | (unsigned)msg[3] << 8;
	printf("reply: major=%u minor=%u reserved=%u command=0x%08X length=%u status=%u size=%zu "
	       "parts=%d\n",
	       msg[0], msg[1], reserved, cmd, len, status, got, parts);
	bool ok = msg[0] == 1 && msg[1] >= 1 && reserved == 0 && cmd == 0x0480001Au &&
		  got == (size_t)len + 12 && status == 0;
	if (!ok)
		fprintf(stderr, "invalid reply\n");

	if (wd >= 0 && !watchdog_finish(wd))
		ok = false;
	free(msg);
	if (wd >= 0)
		close(wd);
	close(fd);
	return ok ? 0 : 1;
}
