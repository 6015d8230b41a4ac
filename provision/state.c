/* SPDX-License-Identifier: Apache-2.0 */
#include "state.h"
#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/magic.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define STATE_FILE_MAX 65536

static void say(char *why, size_t cap, const char *what, const char *path, int err)
{
	snprintf(why, cap, "%s %s: %s", what, path, strerror(err));
}

static bool uuid_is_safe(const char *uuid)
{
	size_t n = strlen(uuid);

	if (n == 0 || n > 36)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((uuid[i] >= '0' && uuid[i] <= '9') || (uuid[i] >= 'a' && uuid[i] <= 'f') ||
		      (uuid[i] >= 'A' && uuid[i] <= 'F') || uuid[i] == '-'))
			return false;
	return true;
}

static int record_path(const char *dir, const char *uuid, char *path, size_t cap)
{
	if (!uuid_is_safe(uuid))
		return -1;
	return snprintf(path, cap, "%s/%s.json", dir, uuid) < (int)cap ? 0 : -1;
}

int state_dir_prepare(const char *dir, char *why, size_t why_cap)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		say(why, why_cap, "cannot create state directory", dir, errno);
		return -1;
	}
	if (stat(dir, &st) < 0) {
		say(why, why_cap, "cannot use state directory", dir, errno);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		say(why, why_cap, "state directory", dir, ENOTDIR);
		return -1;
	}
	return 0;
}

int state_lock(const char *dir, int wait_ms, int *fd, char *why, size_t why_cap)
{
	char path[PATH_MAX];
	long deadline = prov_now_ms() + (wait_ms > 0 ? wait_ms : 0);
	int lfd;

	*fd = -1;
	if (snprintf(path, sizeof(path), "%s/%s", dir, STATE_LOCK_NAME) >= (int)sizeof(path)) {
		say(why, why_cap, "cannot lock state directory", dir, ENAMETOOLONG);
		return -1;
	}
	lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd < 0) {
		say(why, why_cap, "cannot open", path, errno);
		return -1;
	}
	while (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			say(why, why_cap, "cannot lock", path, errno);
			close(lfd);
			return -1;
		}
		if (prov_now_ms() >= deadline) {
			close(lfd);
			return 1;
		}
		prov_sleep_ms(50);
	}
	*fd = lfd;
	return 0;
}

void state_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* the lock goes with the last descriptor */
}

bool state_dir_is_persistent(const char *dir)
{
	struct statfs fs;

	if (statfs(dir, &fs) < 0)
		return false;
	/*
	 * An overlay is what live and ephemeral roots (MAAS's commissioning environment among
	 * them) put over a tmpfs; whether its upper layer is a disk cannot be told from here, so
	 * it does not count as persistent either.
	 */
	return fs.f_type != TMPFS_MAGIC && fs.f_type != RAMFS_MAGIC &&
	       fs.f_type != OVERLAYFS_SUPER_MAGIC && fs.f_type != SQUASHFS_MAGIC;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* Write TEXT to PATH atomically with mode 0600. */
/*
 * Temp files that a run killed in the middle of a write left behind ("NAME.tmp.PID" of a process
 * that is gone): they may hold a password, so they do not stay.
 */
static void remove_stale_temps(const char *dir, const char *name)
{
	size_t n = strlen(name);
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		long pid;

		if (strncmp(e->d_name, name, n) != 0 || strncmp(e->d_name + n, ".tmp.", 5) != 0)
			continue;
		pid = strtol(e->d_name + n + 5, &end, 10);
		if (*end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno == EPERM))
			continue;
		unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

static int write_atomic(const char *dir, const char *path, const char *text, char *why,
			size_t why_cap)
{
	const char *base = strrchr(path, '/');
	char tmp[4096];
	int fd, err;

	remove_stale_temps(dir, base ? base + 1 : path);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		say(why, why_cap, "path too long:", path, ENAMETOOLONG);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		say(why, why_cap, "cannot write", tmp, errno);
		return -1;
	}
	if (write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
		err = errno;
		close(fd);
		unlink(tmp);
		say(why, why_cap, "cannot write", tmp, err);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		err = errno;
		unlink(tmp);
		say(why, why_cap, "cannot rename into", path, err);
		return -1;
	}
	if (fsync_dir(dir) < 0) {
		say(why, why_cap, "cannot sync", dir, errno);
		return -1;
	}
	return 0;
}

/* json-c frees its strings without clearing them: clear a secret one first. */
static void wipe_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		OPENSSL_cleanse((void *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

int state_save(const char *dir, const struct state_record *rec, char *why, size_t why_cap)
{
	char path[4096];
	struct json_object *o;
	const char *text;
	int r;

	if (record_path(dir, rec->uuid, path, sizeof(path)) < 0) {
		snprintf(why, why_cap, "bad UUID or state directory path");
		return -1;
	}
	o = json_object_new_object();
	json_object_object_add(o, "uuid", json_object_new_string(rec->uuid));
	json_object_object_add(o, "user", json_object_new_string(rec->user));
	json_object_object_add(o, "password", json_object_new_string(rec->password));
	if (rec->mebx_password[0])
		json_object_object_add(o, "mebx_password",
				       json_object_new_string(rec->mebx_password));
	json_object_object_add(o, "status", json_object_new_string(rec->status));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	r = write_atomic(dir, path, text, why, why_cap);
	/* json-c keeps the serialised text and the strings in its own buffers: wipe them. */
	OPENSSL_cleanse((void *)text, strlen(text));
	wipe_field(o, "password");
	wipe_field(o, "mebx_password");
	json_object_put(o);
	return r;
}

static int copy_field(struct json_object *o, const char *key, char *out, size_t cap)
{
	struct json_object *v;
	const char *s;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	if (strlen(s) >= cap)
		return -1;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static int read_small_file(const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t got = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			close(fd);
			return -err;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap - 1) {
			close(fd);
			return -EFBIG;
		}
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return 0;
}

int state_load(const char *dir, const char *uuid, struct state_record *rec, char *why,
	       size_t why_cap)
{
	char path[4096], *buf;
	struct json_object *o = NULL;
	size_t len = 0;
	int r, bad;

	memset(rec, 0, sizeof(*rec));
	if (record_path(dir, uuid, path, sizeof(path)) < 0) {
		snprintf(why, why_cap, "bad UUID or state directory path");
		return -1;
	}
	buf = malloc(STATE_FILE_MAX);
	if (!buf) {
		snprintf(why, why_cap, "out of memory");
		return -1;
	}
	r = read_small_file(path, buf, STATE_FILE_MAX, &len);
	if (r == 0)
		o = json_tokener_parse(buf);
	OPENSSL_clear_free(buf, STATE_FILE_MAX);
	if (r == -ENOENT)
		return 1;
	if (r < 0) {
		say(why, why_cap, "cannot read", path, -r);
		return -1;
	}
	bad = !o || copy_field(o, "uuid", rec->uuid, sizeof(rec->uuid)) < 0 ||
	      copy_field(o, "user", rec->user, sizeof(rec->user)) < 0 ||
	      copy_field(o, "password", rec->password, sizeof(rec->password)) < 0 ||
	      copy_field(o, "status", rec->status, sizeof(rec->status)) < 0 ||
	      strcmp(rec->uuid, uuid) != 0;
	/* optional: absent from client control mode records */
	if (!bad && json_object_object_get_ex(o, "mebx_password", NULL))
		bad = copy_field(o, "mebx_password", rec->mebx_password,
				 sizeof(rec->mebx_password)) < 0;
	wipe_field(o, "password");
	wipe_field(o, "mebx_password");
	json_object_put(o);
	if (bad) {
		state_record_wipe(rec);
		snprintf(why, why_cap, "state file %s is malformed", path);
		return -1;
	}
	return 0;
}

int state_remove(const char *dir, const char *uuid, char *why, size_t why_cap)
{
	char path[4096];

	if (record_path(dir, uuid, path, sizeof(path)) < 0) {
		snprintf(why, why_cap, "bad UUID or state directory path");
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		say(why, why_cap, "cannot remove", path, errno);
		return -1;
	}
	return fsync_dir(dir) < 0 && errno != ENOENT ? -1 : 0;
}

void state_record_wipe(struct state_record *rec)
{
	OPENSSL_cleanse(rec, sizeof(*rec));
}
