/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mei class attributes in sysfs, as the kernel prints them (PROTOCOL.md section 1). Every
 * file is read whole into a bounded buffer and parsed through the wire cursor, so a file that is
 * longer, shorter or otherwise different from what the kernel writes is refused, not guessed at.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mei.h"
#include "wire.h"

#define SYSFS_DEFAULT_ROOT "/sys"
#define SYSFS_FILE_MAX     4096u
#define SYSFS_PATH_MAX     4096u
#define DECIMAL_DIGITS_MAX 10u
#define FW_STATUS_DIGITS   8u

static int errno_to_err(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return MEI_E_NO_DEVICE;
	case EACCES:
	case EPERM:
		return MEI_E_ACCESS;
	case ENOMEM:
		return MEI_E_NOMEM;
	default:
		return MEI_E_IO;
	}
}

static bool name_ok(const char *name)
{
	return name && name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

/* ROOT/class/mei/NAME, or ROOT/class/mei/NAME/ATTR when ATTR is given. */
static int class_path(char *out, size_t cap, const char *root, const char *name, const char *attr)
{
	int n;

	if (!name_ok(name))
		return MEI_E_IO;
	if (!root)
		root = SYSFS_DEFAULT_ROOT;
	if (attr)
		n = snprintf(out, cap, "%s/class/mei/%s/%s", root, name, attr);
	else
		n = snprintf(out, cap, "%s/class/mei/%s", root, name);
	return n < 0 || (size_t)n >= cap ? MEI_E_IO : 0;
}

static int check_device_dir(const char *root, const char *name)
{
	char path[SYSFS_PATH_MAX];
	struct stat st;
	int r = class_path(path, sizeof(path), root, name, NULL);

	if (r < 0)
		return r;
	if (stat(path, &st) != 0)
		return errno_to_err(errno);
	return S_ISDIR(st.st_mode) ? 0 : MEI_E_NO_DEVICE;
}

static int read_fd_whole(int fd, char *buf, size_t cap, size_t *len)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return MEI_E_IO; /* the file was there: a failing read is not "absent" */
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap)
			return MEI_E_PROTOCOL; /* larger than any attribute the kernel writes */
	}
	*len = got;
	return 0;
}

/* The whole attribute file into BUF. MEI_E_NO_DEVICE when it does not exist. */
static int read_attr(const char *root, const char *name, const char *attr, char *buf, size_t cap,
                     size_t *len)
{
	char path[SYSFS_PATH_MAX];
	int fd, r = class_path(path, sizeof(path), root, name, attr);

	if (r < 0)
		return r;
	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return errno_to_err(errno);
	r = read_fd_whole(fd, buf, cap, len);
	close(fd);
	return r;
}

static int expect_char(struct cursor *c, char want)
{
	uint8_t ch;
	int r = cur_u8(c, &ch);

	if (r == 0 && ch != (uint8_t)want)
		r = MEI_E_PROTOCOL;
	return r;
}

/* One line ends with '\n'; the last line may also end with the file. */
static int end_of_line(struct cursor *c)
{
	return c->left == 0 ? 0 : expect_char(c, '\n');
}

static bool peek_is(const struct cursor *c, bool (*pred)(uint8_t))
{
	return c->left > 0 && pred(c->p[0]);
}

static bool is_digit(uint8_t ch)
{
	return ch >= '0' && ch <= '9';
}

static int hex_value(uint8_t ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* An unsigned decimal: 1 to 10 digits, no sign, no spaces, no overflow. */
static int parse_decimal(struct cursor *c, unsigned *v)
{
	unsigned long long acc = 0;
	unsigned digits = 0;

	while (peek_is(c, is_digit)) {
		uint8_t ch;

		if (++digits > DECIMAL_DIGITS_MAX)
			return MEI_E_PROTOCOL;
		(void)cur_u8(c, &ch);
		acc = acc * 10 + (unsigned)(ch - '0');
	}
	if (digits == 0 || acc > 0xFFFFFFFFull)
		return MEI_E_PROTOCOL;
	*v = (unsigned)acc;
	return 0;
}

/* Exactly eight hex digits, as "%08X" prints a register. */
static int parse_hex32(struct cursor *c, uint32_t *v)
{
	uint32_t acc = 0;

	for (unsigned i = 0; i < FW_STATUS_DIGITS; i++) {
		uint8_t ch;
		int r = cur_u8(c, &ch), d;

		if (r < 0)
			return r;
		d = hex_value(ch);
		if (d < 0)
			return MEI_E_PROTOCOL;
		acc = acc << 4 | (uint32_t)d;
	}
	*v = acc;
	return 0;
}

/* "%u:%u.%u.%u.%u" */
static int parse_fw_ver_line(struct cursor *c, unsigned *platform, unsigned *major, unsigned *minor,
                             unsigned *hotfix, unsigned *build)
{
	int r = parse_decimal(c, platform);

	if (r == 0)
		r = expect_char(c, ':');
	if (r == 0)
		r = parse_decimal(c, major);
	if (r == 0)
		r = expect_char(c, '.');
	if (r == 0)
		r = parse_decimal(c, minor);
	if (r == 0)
		r = expect_char(c, '.');
	if (r == 0)
		r = parse_decimal(c, hotfix);
	if (r == 0)
		r = expect_char(c, '.');
	if (r == 0)
		r = parse_decimal(c, build);
	if (r == 0)
		r = end_of_line(c);
	return r;
}

static int parse_fw_ver(const char *buf, size_t len, struct mei_sysfs *out)
{
	struct cursor c = cursor_init(buf, len);
	unsigned n = 0;

	while (c.left > 0) {
		int r;

		if (n == MEI_FW_VER_MAX)
			return MEI_E_PROTOCOL;
		r = parse_fw_ver_line(&c, &out->fw_ver[n].platform, &out->fw_ver[n].major,
		                      &out->fw_ver[n].minor, &out->fw_ver[n].hotfix,
		                      &out->fw_ver[n].build);
		if (r < 0)
			return r;
		n++;
	}
	if (n == 0)
		return MEI_E_PROTOCOL;
	out->fw_ver_count = n;
	return 0;
}

static int parse_fw_status(const char *buf, size_t len, struct mei_sysfs *out)
{
	struct cursor c = cursor_init(buf, len);
	unsigned n = 0;

	while (c.left > 0) {
		int r;

		if (n == MEI_FW_STATUS_MAX)
			return MEI_E_PROTOCOL;
		r = parse_hex32(&c, &out->fw_status[n]);
		if (r == 0)
			r = end_of_line(&c);
		if (r < 0)
			return r;
		n++;
	}
	if (n == 0)
		return MEI_E_PROTOCOL;
	out->fw_status_count = n;
	return 0;
}

static bool is_state_char(uint8_t ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* A state word such as "ENABLED"; the kernel writes no newline, but one is tolerated. */
static int parse_dev_state(const char *buf, size_t len, char *out, size_t cap)
{
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len == 0 || len >= cap)
		return MEI_E_PROTOCOL;
	for (size_t i = 0; i < len; i++)
		if (!is_state_char((uint8_t)buf[i]))
			return MEI_E_PROTOCOL;
	memcpy(out, buf, len);
	out[len] = '\0';
	return 0;
}

int mei_sysfs_read_dev_state(const char *root, const char *name, char *out, size_t cap)
{
	char buf[SYSFS_FILE_MAX];
	size_t len;
	int r;

	if (!out || cap == 0)
		return MEI_E_IO;
	out[0] = '\0';
	r = read_attr(root, name, "dev_state", buf, sizeof(buf), &len);
	if (r == 0)
		r = parse_dev_state(buf, len, out, cap);
	return r;
}

/* Reads ATTR and hands it to PARSE; an absent file leaves OUT as it is. */
static int read_optional(const char *root, const char *name, const char *attr,
                         int (*parse)(const char *, size_t, struct mei_sysfs *),
                         struct mei_sysfs *out)
{
	char buf[SYSFS_FILE_MAX];
	size_t len;
	int r = read_attr(root, name, attr, buf, sizeof(buf), &len);

	if (r == MEI_E_NO_DEVICE)
		return 0;
	return r < 0 ? r : parse(buf, len, out);
}

static int parse_dev_state_into(const char *buf, size_t len, struct mei_sysfs *out)
{
	return parse_dev_state(buf, len, out->dev_state, sizeof(out->dev_state));
}

int mei_sysfs_read(const char *root, const char *name, struct mei_sysfs *out)
{
	struct mei_sysfs s;
	int r;

	if (!out)
		return MEI_E_IO;
	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof(s));
	r = check_device_dir(root, name);
	if (r == 0)
		r = read_optional(root, name, "dev_state", parse_dev_state_into, &s);
	if (r == 0)
		r = read_optional(root, name, "fw_ver", parse_fw_ver, &s);
	if (r == 0)
		r = read_optional(root, name, "fw_status", parse_fw_status, &s);
	if (r == 0)
		*out = s;
	return r;
}
