/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MAAS's bmc-config hand-off: the flat YAML a commissioning script leaves at BMC_CONFIG_PATH.
 * libyaml's emitter writes it, so every password symbol is quoted as YAML needs; the file is
 * complete before it has its name, has mode 0600, and never replaces one that exists (the first
 * writer wins, as MAAS expects).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "handoff.h"
#include "session.h"

#define BMC_CONFIG_TEXT_MAX 4096

/*
 * Plain scalars that a YAML reader would take for something other than a string: PyYAML's
 * (YAML 1.1, what MAAS reads the file with) implicit resolvers for bool, null, int, float,
 * timestamp, merge and value, and YAML 1.2's core schema numbers for other readers. libyaml's
 * emitter does no such resolution and would write the port 16992 plain, which MAAS would read
 * as a number; such values are written quoted (quoting more than needed is harmless).
 */
static const char yaml_typed[] =
    "^("
    "yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    "|~|null|Null|NULL|<<|="
    "|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
    "|[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+"
    "|[-+]?[0-9][0-9_]*\\.[0-9_]*([eE][-+][0-9]+)?|\\.[0-9_]+([eE][-+][0-9]+)?"
    "|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\\.[0-9_]*"
    "|[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)"
    "|[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+"
    "|[0-9]{4}-[0-9]{2}-[0-9]{2}"
    "|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\\.[0-9]*)?"
    "([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?"
    ")$";

static bool needs_quotes(const regex_t *typed, const char *v)
{
	return !*v || regexec(typed, v, 0, NULL, 0) == 0;
}

static int emit_scalar(yaml_emitter_t *e, const regex_t *typed, const char *v)
{
	yaml_event_t ev;
	yaml_scalar_style_t style =
	    needs_quotes(typed, v) ? YAML_SINGLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;

	if (!yaml_scalar_event_initialize(&ev, NULL, (yaml_char_t *)YAML_STR_TAG, (yaml_char_t *)v,
	                                  (int)strlen(v), 1, 1, style))
		return 0;
	return yaml_emitter_emit(e, &ev); /* the emitter owns the event, even on failure */
}

static int emit_pairs(yaml_emitter_t *e, const regex_t *typed, const struct power_params *p)
{
	const char *const pairs[][2] = {
	    {"power_type", "amt"},
	    {"power_address", p->power_address},
	    {"power_user", p->power_user},
	    {"power_pass", p->power_pass},
	    {"port", p->port},
	};

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (!emit_scalar(e, typed, pairs[i][0]) || !emit_scalar(e, typed, pairs[i][1]))
			return 0;
	return 1;
}

static int emit_document(yaml_emitter_t *e, const regex_t *typed, const struct power_params *p)
{
	yaml_event_t ev;

	return yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
	       yaml_emitter_emit(e, &ev) &&
	       yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
	       yaml_emitter_emit(e, &ev) &&
	       yaml_mapping_start_event_initialize(&ev, NULL, (yaml_char_t *)YAML_MAP_TAG, 1,
	                                           YAML_BLOCK_MAPPING_STYLE) &&
	       yaml_emitter_emit(e, &ev) && emit_pairs(e, typed, p) &&
	       yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(e, &ev) &&
	       yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(e, &ev) &&
	       yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(e, &ev) &&
	       yaml_emitter_flush(e);
}

/* The YAML text of P in OUT; 0 or PROV_E_INTERNAL. */
static int render(const struct power_params *p, unsigned char *out, size_t cap, size_t *len,
                  struct prov_error *err)
{
	yaml_emitter_t e;
	regex_t typed;
	int ok;

	*len = 0;
	if (regcomp(&typed, yaml_typed, REG_EXTENDED | REG_NOSUB) != 0)
		return prov_fail(err, PROV_E_INTERNAL, 0, "bmc-config: cannot compile a pattern");
	if (!yaml_emitter_initialize(&e)) {
		regfree(&typed);
		return prov_fail(err, PROV_E_INTERNAL, 0, "bmc-config: cannot set up libyaml");
	}
	yaml_emitter_set_output_string(&e, out, cap, len);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1); /* one line per key, however long */
	ok = emit_document(&e, &typed, p);
	/* libyaml's problem texts are fixed strings: no value in them */
	if (!ok)
		prov_fail(err, PROV_E_INTERNAL, 0, "bmc-config: cannot write the YAML: %s",
		          e.problem ? e.problem : "out of room");
	if (e.buffer.start)
		OPENSSL_cleanse(e.buffer.start, (size_t)(e.buffer.end - e.buffer.start));
	yaml_emitter_delete(&e);
	regfree(&typed);
	return ok ? 0 : PROV_E_INTERNAL;
}

static int write_all(int fd, const unsigned char *buf, size_t len)
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

/*
 * Give TMP the name PATH unless PATH exists (then 1), atomically: a file that appears at PATH
 * meanwhile is never replaced. 0, 1, or -1 with errno.
 */
static int place(const char *tmp, const char *path)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST)
		return 1;
	if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
		return -1;
	/* A file system without RENAME_NOREPLACE: link() refuses an existing name the same way. */
	if (link(tmp, path) < 0)
		return errno == EEXIST ? 1 : -1;
	unlink(tmp);
	return 0;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	/* some file systems cannot sync a directory: nothing more can be done there */
	return r < 0 && errno != EINVAL ? -1 : 0;
}

static void dir_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, cap, ".");
	else if (slash == path)
		snprintf(dir, cap, "/");
	else
		snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

/* Write TEXT to a new file in DIR (mode 0600, synced) and give it the name PATH. */
static int write_new(const char *dir, const char *path, const unsigned char *text, size_t len,
                     struct prov_error *err)
{
	char tmp[4096];
	int fd, e, r;

	if (snprintf(tmp, sizeof(tmp), "%s/.amt-enlist.XXXXXX", dir) >= (int)sizeof(tmp))
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "bmc-config %s: path too long", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return prov_fail(err, PROV_E_INTERNAL, 0,
		                 "bmc-config %s: cannot create a file in %s: %s", path, dir,
		                 strerror(errno));
	if (fchmod(fd, 0600) < 0 || write_all(fd, text, len) < 0 || fsync(fd) < 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		return prov_fail(err, PROV_E_INTERNAL, 0, "bmc-config %s: cannot write %s: %s",
		                 path, tmp, strerror(e));
	}
	if (close(fd) < 0) {
		e = errno;
		unlink(tmp);
		return prov_fail(err, PROV_E_INTERNAL, 0, "bmc-config %s: cannot write %s: %s",
		                 path, tmp, strerror(e));
	}
	r = place(tmp, path);
	if (r != 0) {
		e = errno;
		unlink(tmp);
		if (r == 1)
			return 1;
		return prov_fail(err, PROV_E_INTERNAL, 0,
		                 "bmc-config %s: cannot give %s its name: %s", path, tmp,
		                 strerror(e));
	}
	if (sync_dir(dir) < 0)
		return prov_fail(err, PROV_E_INTERNAL, 0,
		                 "bmc-config %s: written, but syncing %s failed: %s", path, dir,
		                 strerror(errno));
	return 0;
}

int bmc_config_write(const char *path, const struct power_params *p, struct prov_error *err)
{
	unsigned char text[BMC_CONFIG_TEXT_MAX];
	struct stat st;
	size_t len;
	int r;

	if (!path || !*path)
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "bmc-config: no path");
	/* MAAS replaces the whole power dict: parameters without these would erase good ones. */
	if (!p->power_address[0] || !p->power_pass[0])
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "bmc-config %s: refusing power parameters without %s", path,
		                 p->power_address[0] ? "a password" : "an address");
	if (lstat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return prov_fail(err, PROV_E_BAD_INPUT, 0, "bmc-config %s: is a directory",
			                 path);
		return 1;
	}
	if (errno != ENOENT)
		return prov_fail(err, PROV_E_INTERNAL, 0, "bmc-config %s: %s", path,
		                 strerror(errno));
	r = render(p, text, sizeof(text), &len, err);
	if (r == 0) {
		char dir[4096];

		dir_of(path, dir, sizeof(dir));
		r = write_new(dir, path, text, len, err);
	}
	OPENSSL_cleanse(text, sizeof(text));
	return r;
}
