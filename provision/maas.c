/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MAAS: the OAuth credentials of cloud-init's MAAS datasource (libyaml), the kernel command
 * line's cloud-config-url= and BOOTIF=, OAuth 1.0a PLAINTEXT, and the metadata signal that
 * hands MAAS the power parameters (a multipart form sent through http_send).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "handoff.h"
#include "http.h"
#include "session.h"

/* The metadata API version MAAS's own scripts use (maas_api_helper.MD_VERSION). */
#define MAAS_MD_VERSION "2012-03-01"

/* cloud-init's MAAS config is a few hundred bytes; anything this big is not one. */
#define CREDS_TEXT_MAX 65536

/* cloud-init's MAAS config nests a few levels; a real one never comes near this. */
#define CREDS_DEPTH_MAX 32

/* MAAS accepts timestamps within minutes of its clock: closer than this is not a skew. */
#define SKEW_TOLERANCE_S 10

void maas_creds_wipe(struct maas_creds *c)
{
	OPENSSL_cleanse(c, sizeof(*c));
}

/* ---- credentials ---- */

static yaml_node_t *mapping_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	size_t kl = strlen(key);
	yaml_node_t *found = NULL;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);

		/* A repeated key: the last one counts, as with PyYAML (MAAS's own reader). */
		if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == kl &&
		    memcmp(k->data.scalar.value, key, kl) == 0)
			found = yaml_document_get_node(doc, p->value);
	}
	return found;
}

static bool is_null(const yaml_node_t *v)
{
	const char *s = (const char *)v->data.scalar.value;

	if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return v->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

struct creds_walk {
	yaml_document_t *doc;
	yaml_node_t *map;
	const char *what;   /* the file or URL, for messages */
	const char *prefix; /* "datasource.MAAS." or "" for a flat config */
};

/*
 * Copy KEY's value into OUT. Values go into URLs and HTTP headers: printable ASCII without
 * spaces only. Messages name the key, never the value.
 */
static int take(const struct creds_walk *w, const char *key, char *out, size_t cap, bool required,
                struct prov_error *err)
{
	yaml_node_t *v = mapping_get(w->doc, w->map, key);

	out[0] = '\0';
	if (!v || (v->type == YAML_SCALAR_NODE && is_null(v))) {
		if (required)
			return prov_fail(err, PROV_E_BAD_INPUT, 0, "%s: no %s%s", w->what,
			                 w->prefix, key);
		return 0;
	}
	if (v->type != YAML_SCALAR_NODE)
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "%s: %s%s is not a string", w->what,
		                 w->prefix, key);
	if (v->data.scalar.length >= cap)
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "%s: %s%s is too long (%zu bytes)",
		                 w->what, w->prefix, key, v->data.scalar.length);
	for (size_t i = 0; i < v->data.scalar.length; i++)
		if (v->data.scalar.value[i] <= 0x20 || v->data.scalar.value[i] >= 0x7f)
			return prov_fail(err, PROV_E_BAD_INPUT, 0,
			                 "%s: %s%s has characters other than printable ASCII",
			                 w->what, w->prefix, key);
	memcpy(out, v->data.scalar.value, v->data.scalar.length);
	out[v->data.scalar.length] = '\0';
	return 0;
}

static int walk_creds(struct creds_walk *w, struct maas_creds *c, struct prov_error *err)
{
	yaml_node_t *root = yaml_document_get_root_node(w->doc), *ds;
	int r;

	if (!root)
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "%s: empty, no datasource.MAAS.metadata_url", w->what);
	if (root->type != YAML_MAPPING_NODE)
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "%s: not a YAML mapping", w->what);
	/* Like MAAS's reader: the datasource's MAAS section, or a flat config without one. */
	ds = mapping_get(w->doc, root, "datasource");
	if (ds) {
		if (ds->type != YAML_MAPPING_NODE)
			return prov_fail(err, PROV_E_BAD_INPUT, 0,
			                 "%s: datasource is not a mapping", w->what);
		w->map = mapping_get(w->doc, ds, "MAAS");
		w->prefix = "datasource.MAAS.";
		if (!w->map)
			return prov_fail(err, PROV_E_BAD_INPUT, 0, "%s: no datasource.MAAS",
			                 w->what);
		if (w->map->type != YAML_MAPPING_NODE)
			return prov_fail(err, PROV_E_BAD_INPUT, 0,
			                 "%s: datasource.MAAS is not a mapping", w->what);
	} else {
		w->map = root;
		w->prefix = "";
	}
	r = take(w, "metadata_url", c->metadata_url, sizeof(c->metadata_url), true, err);
	if (r == 0 && strncmp(c->metadata_url, "http://", 7) != 0 &&
	    strncmp(c->metadata_url, "https://", 8) != 0)
		r = prov_fail(err, PROV_E_BAD_INPUT, 0, "%s: %smetadata_url is not an http(s) URL",
		              w->what, w->prefix);
	/* The enlistment variant has no token: the fields stay empty and the caller decides. */
	if (r == 0)
		r = take(w, "consumer_key", c->consumer_key, sizeof(c->consumer_key), false, err);
	if (r == 0)
		r = take(w, "token_key", c->token_key, sizeof(c->token_key), false, err);
	if (r == 0)
		r = take(w, "token_secret", c->token_secret, sizeof(c->token_secret), false, err);
	return r;
}

/* libyaml frees without clearing: clear what held the token secret (best effort). */
static void wipe_parser(yaml_parser_t *p)
{
	if (p->buffer.start)
		OPENSSL_cleanse(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
	if (p->raw_buffer.start)
		OPENSSL_cleanse(p->raw_buffer.start,
		                (size_t)(p->raw_buffer.end - p->raw_buffer.start));
}

static void wipe_document(yaml_document_t *doc)
{
	for (yaml_node_t *n = doc->nodes.start; n && n < doc->nodes.top; n++)
		if (n->type == YAML_SCALAR_NODE && n->data.scalar.value)
			OPENSSL_cleanse(n->data.scalar.value, n->data.scalar.length);
}

static int not_yaml(const yaml_parser_t *parser, const char *what, struct prov_error *err)
{
	/* libyaml's problem texts are fixed strings: no secret in them */
	return prov_fail(err, PROV_E_BAD_INPUT, 0, "%s: not YAML (line %zu: %s)", what,
	                 parser->problem_mark.line + 1,
	                 parser->problem ? parser->problem : "unreadable");
}

/*
 * A first pass over the events that stops at the first error or at nesting deeper than any
 * cloud-init config has: libyaml's scanner slows down with the square of the nesting depth
 * (64 KiB of "[" takes it half a minute), and its loader would go all the way.
 */
static int check_shape(const char *text, size_t len, const char *what, struct prov_error *err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0, r = 0;
	bool done = false;

	if (!yaml_parser_initialize(&parser))
		return prov_fail(err, PROV_E_INTERNAL, 0, "%s: cannot set up the YAML parser",
		                 what);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && r == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			r = not_yaml(&parser, what, err);
			break;
		}
		if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
			if (++depth > CREDS_DEPTH_MAX)
				r = prov_fail(err, PROV_E_BAD_INPUT, 0,
				              "%s: nested more than %d deep: not cloud-init's MAAS "
				              "config",
				              what, CREDS_DEPTH_MAX);
		} else if (ev.type == YAML_SEQUENCE_END_EVENT ||
		           ev.type == YAML_MAPPING_END_EVENT) {
			depth--;
		} else if (ev.type == YAML_SCALAR_EVENT) {
			OPENSSL_cleanse(ev.data.scalar.value, ev.data.scalar.length);
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	wipe_parser(&parser);
	yaml_parser_delete(&parser);
	return r;
}

int maas_creds_from_yaml(const char *text, size_t len, const char *what, struct maas_creds *c,
                         struct prov_error *err)
{
	struct creds_walk w = {.what = what ? what : "MAAS credentials"};
	yaml_parser_t parser;
	yaml_document_t doc;
	int r;

	memset(c, 0, sizeof(*c));
	if (len > CREDS_TEXT_MAX)
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "%s: %zu bytes, too large for cloud-init's MAAS config", w.what,
		                 len);
	r = check_shape(text, len, w.what, err);
	if (r < 0)
		return r;
	if (!yaml_parser_initialize(&parser))
		return prov_fail(err, PROV_E_INTERNAL, 0, "%s: cannot set up the YAML parser",
		                 w.what);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = not_yaml(&parser, w.what, err);
		wipe_parser(&parser);
		yaml_parser_delete(&parser);
		return r;
	}
	w.doc = &doc;
	r = walk_creds(&w, c, err);
	if (r != 0)
		maas_creds_wipe(c);
	wipe_document(&doc);
	yaml_document_delete(&doc);
	wipe_parser(&parser);
	yaml_parser_delete(&parser);
	return r;
}

int maas_creds_from_file(const char *path, struct maas_creds *c, struct prov_error *err)
{
	char *buf;
	size_t len = 0;
	ssize_t n;
	int fd, r;

	memset(c, 0, sizeof(*c));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "cannot read MAAS credentials %s: %s",
		                 path, strerror(errno));
	buf = malloc(CREDS_TEXT_MAX + 1);
	if (!buf) {
		close(fd);
		return prov_fail(err, PROV_E_INTERNAL, 0, "%s: out of memory", path);
	}
	/* One byte more than allowed is read, so an oversized file is seen as one. */
	while (len <= CREDS_TEXT_MAX) {
		n = read(fd, buf + len, CREDS_TEXT_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = prov_fail(err, PROV_E_BAD_INPUT, 0,
			              "cannot read MAAS credentials %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = maas_creds_from_yaml(buf, len, path, c, err);
out:
	OPENSSL_cleanse(buf, len);
	free(buf);
	close(fd);
	return r;
}

/* ---- the kernel command line ---- */

/*
 * The next parameter of *P, its double quotes removed as the kernel does ("a=b c" and a="b c"
 * are one parameter). FITS is false when it did not fit OUT.
 */
static bool next_param(const char **p, char *out, size_t cap, bool *fits)
{
	const char *s = *p;
	bool quoted = false;
	size_t n = 0;

	while (*s && isspace((unsigned char)*s))
		s++;
	if (!*s)
		return false;
	*fits = true;
	for (; *s && (quoted || !isspace((unsigned char)*s)); s++) {
		if (*s == '"') {
			quoted = !quoted;
			continue;
		}
		if (n + 1 < cap)
			out[n++] = *s;
		else
			*fits = false;
	}
	out[n] = '\0';
	*p = s;
	return true;
}

/* The value of the last NAME= (as the last one wins for cloud-init), or false. */
static bool cmdline_value(const char *cmdline, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = cmdline;
	bool found = false, fits = true;
	char param[4096];

	if (!cmdline || cap == 0)
		return false;
	out[0] = '\0';
	while (next_param(&p, param, sizeof(param), &fits)) {
		const char *eq = strchr(param, '=');

		if (!eq || (size_t)(eq - param) != nl || memcmp(param, name, nl) != 0)
			continue;
		found = fits && strlen(eq + 1) > 0 && strlen(eq + 1) < cap;
		if (found)
			snprintf(out, cap, "%s", eq + 1);
	}
	if (!found)
		out[0] = '\0';
	return found;
}

bool cmdline_cloud_config_url(const char *cmdline, char *url, size_t cap)
{
	return cmdline_value(cmdline, "cloud-config-url", url, cap);
}

bool cmdline_bootif(const char *cmdline, char mac[18])
{
	char v[32];

	mac[0] = '\0';
	/* PXELINUX's form: the ARP hardware type (01, Ethernet), then the MAC with dashes. */
	if (!cmdline_value(cmdline, "BOOTIF", v, sizeof(v)) || strlen(v) != 20 ||
	    strncmp(v, "01-", 3) != 0)
		return false;
	for (size_t i = 0; i < 6; i++) {
		const char *h = v + 3 + i * 3;

		if (!isxdigit((unsigned char)h[0]) || !isxdigit((unsigned char)h[1]) ||
		    (i < 5 && h[2] != '-')) {
			mac[0] = '\0';
			return false;
		}
		mac[i * 3] = (char)tolower((unsigned char)h[0]);
		mac[i * 3 + 1] = (char)tolower((unsigned char)h[1]);
		mac[i * 3 + 2] = i < 5 ? ':' : '\0';
	}
	return true;
}

/* ---- OAuth 1.0a PLAINTEXT ---- */

/* RFC 5849 3.6: all but ALPHA, DIGIT, "-", ".", "_", "~" as %XX (upper-case hex). */
static int pct_encode(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		             (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
		             *p == '~';

		if (o + (plain ? 1 : 3) >= cap)
			return -1;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

#define ENCODED(field) (3 * sizeof(field) + 1)

int maas_oauth_header(const struct maas_creds *c, const char *nonce, long timestamp, char *out,
                      size_t cap)
{
	char ck[ENCODED(c->consumer_key)], tk[ENCODED(c->token_key)], n[3 * 64 + 1];
	char ts[ENCODED(c->token_secret)], sig_base[ENCODED(c->token_secret) + 1];
	char sig[3 * sizeof(sig_base) + 1];
	int len = -1;

	/*
	 * PLAINTEXT (RFC 5849 3.4.4): the signature is encode(consumer secret) "&"
	 * encode(token secret), the consumer secret being empty for MAAS; like every value in
	 * the header it is percent-encoded once more (3.5.1).
	 */
	if (pct_encode(c->consumer_key, ck, sizeof(ck)) == 0 &&
	    pct_encode(c->token_key, tk, sizeof(tk)) == 0 && pct_encode(nonce, n, sizeof(n)) == 0 &&
	    pct_encode(c->token_secret, ts, sizeof(ts)) == 0 &&
	    snprintf(sig_base, sizeof(sig_base), "&%s", ts) < (int)sizeof(sig_base) &&
	    pct_encode(sig_base, sig, sizeof(sig)) == 0)
		len = snprintf(out, cap,
		               "OAuth oauth_nonce=\"%s\", oauth_timestamp=\"%ld\", "
		               "oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", "
		               "oauth_consumer_key=\"%s\", oauth_token=\"%s\", "
		               "oauth_signature=\"%s\"",
		               n, timestamp, ck, tk, sig);
	OPENSSL_cleanse(ts, sizeof(ts));
	OPENSSL_cleanse(sig_base, sizeof(sig_base));
	OPENSSL_cleanse(sig, sizeof(sig));
	if (len < 0 || (size_t)len >= cap) {
		if (cap > 0)
			OPENSSL_cleanse(out, cap);
		return PROV_E_INTERNAL;
	}
	return 0;
}

/* ---- the metadata signal ---- */

struct signal_ctx {
	const struct maas_creds *creds;
	const char *status;
	const char *power_parameters; /* JSON text, secret */
	curl_mime *form;
	long skew;           /* seconds MAAS's clock is ahead of ours */
	unsigned skew_fixes; /* retries made for a new skew */
};

static bool add_field(curl_mime *form, const char *name, const char *value)
{
	curl_mimepart *part = curl_mime_addpart(form);

	return part && curl_mime_name(part, name) == CURLE_OK &&
	       curl_mime_data(part, value, CURL_ZERO_TERMINATED) == CURLE_OK;
}

/* The form, as MAAS's maas_api_helper.signal() sends it: op=signal is a form field. */
static int build_form(struct signal_ctx *s, CURL *curl, struct prov_error *err)
{
	s->form = curl_mime_init(curl);
	if (!s->form || !add_field(s->form, "op", "signal") ||
	    !add_field(s->form, "status", s->status) || !add_field(s->form, "power_type", "amt") ||
	    !add_field(s->form, "power_parameters", s->power_parameters) ||
	    curl_easy_setopt(curl, CURLOPT_MIMEPOST, s->form) != CURLE_OK)
		return prov_fail(err, PROV_E_INTERNAL, 0, "MAAS signal: cannot build the form");
	return 0;
}

/* Every attempt: a fresh nonce and the timestamp corrected by the skew learnt so far. */
static int prepare_signal(void *ctx, CURL *curl, struct curl_slist **headers,
                          struct prov_error *err)
{
	static const char prefix[] = "Authorization: ";
	struct signal_ctx *s = ctx;
	unsigned char raw[16];
	char nonce[2 * sizeof(raw) + 1], auth[2048];
	int r;

	if (!s->form && (r = build_form(s, curl, err)) < 0)
		return r;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return prov_fail(err, PROV_E_INTERNAL, 0, "MAAS signal: no random nonce");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
	memcpy(auth, prefix, sizeof(prefix) - 1);
	if (maas_oauth_header(s->creds, nonce, (long)time(NULL) + s->skew,
	                      auth + sizeof(prefix) - 1, sizeof(auth) - sizeof(prefix) + 1) < 0)
		return prov_fail(err, PROV_E_INTERNAL, 0,
		                 "MAAS signal: the OAuth header does not fit");
	*headers = curl_slist_append(NULL, auth);
	OPENSSL_cleanse(auth, sizeof(auth));
	if (!*headers)
		return prov_fail(err, PROV_E_INTERNAL, 0, "MAAS signal: out of memory");
	return 0;
}

/*
 * 401/403 may mean our clock is off: MAAS checks the OAuth timestamp. Take the skew from the
 * reply's Date and send again, once for each new skew (a second refusal with the same skew is
 * the credentials' fault, and is final).
 */
static bool signal_again(void *ctx, const struct http_reply *reply)
{
	struct signal_ctx *s = ctx;
	time_t server;
	long skew;

	if ((reply->status != 401 && reply->status != 403) || !reply->date[0] || s->skew_fixes >= 3)
		return false;
	server = curl_getdate(reply->date, NULL);
	if (server == -1)
		return false;
	skew = (long)(server - time(NULL));
	if (labs(skew - s->skew) < SKEW_TOLERANCE_S)
		return false;
	s->skew = skew;
	s->skew_fixes++;
	return true;
}

/* The power_parameters field: exactly MAAS's AMT driver keys, as one JSON object. */
static char *power_parameters_json(const struct power_params *p)
{
	struct json_object *o = json_object_new_object(), *pass = NULL;
	char *copy = NULL;

	if (!o)
		return NULL;
	if (json_object_object_add(o, "power_address", json_object_new_string(p->power_address)) ==
	        0 &&
	    json_object_object_add(o, "power_user", json_object_new_string(p->power_user)) == 0 &&
	    (pass = json_object_new_string(p->power_pass)) &&
	    json_object_object_add(o, "power_pass", pass) == 0 &&
	    json_object_object_add(o, "port", json_object_new_string(p->port)) == 0) {
		const char *text = json_object_to_json_string_ext(
		    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

		if (text) {
			copy = strdup(text);
			OPENSSL_cleanse((void *)text, strlen(text));
		}
	}
	if (pass)
		OPENSSL_cleanse((void *)json_object_get_string(pass),
		                (size_t)json_object_get_string_len(pass));
	json_object_put(o);
	return copy;
}

/* metadata_url without its trailing slashes, then "/2012-03-01/" (maas-run-remote-scripts). */
static int signal_url(const char *metadata_url, char *out, size_t cap)
{
	size_t n = strlen(metadata_url);

	while (n > 0 && metadata_url[n - 1] == '/')
		n--;
	if (n == 0)
		return -1;
	return snprintf(out, cap, "%.*s/%s/", (int)n, metadata_url, MAAS_MD_VERSION) < (int)cap
	           ? 0
	           : -1;
}

static bool is_status_word(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || *s == '_'))
			return false;
	return true;
}

/* What must hold before anything is sent; URL is set to the signal's address. */
static int check_signal(const struct maas_creds *c, const char *status,
                        const struct power_params *p, char *url, size_t cap, struct prov_error *err)
{
	if (!c->consumer_key[0] || !c->token_key[0] || !c->token_secret[0])
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "MAAS signal: the credentials have no OAuth token (enlistment "
		                 "credentials cannot signal)");
	if (signal_url(c->metadata_url, url, cap) < 0)
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "MAAS signal: unusable metadata_url");
	if (!is_status_word(status))
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "MAAS signal: unusable status");
	/* MAAS replaces the whole power dict: parameters without these would erase good ones. */
	if (!p->power_address[0] || !p->power_pass[0])
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "MAAS signal: refusing power parameters without %s",
		                 p->power_address[0] ? "a password" : "an address");
	return 0;
}

int maas_signal(const struct maas_creds *c, const char *status, const struct power_params *p,
                const struct post_opts *o, struct post_result *res, struct prov_error *err)
{
	struct post_opts defaults;
	struct signal_ctx s;
	char url[sizeof(c->metadata_url) + 32];
	char *params;
	int r;

	memset(res, 0, sizeof(*res));
	r = check_signal(c, status, p, url, sizeof(url), err);
	if (r < 0)
		return r;
	if (!o) {
		post_opts_default(&defaults);
		o = &defaults;
	}
	params = power_parameters_json(p);
	if (!params)
		return prov_fail(err, PROV_E_INTERNAL, 0, "MAAS signal: out of memory");
	s = (struct signal_ctx){.creds = c, .status = status, .power_parameters = params};
	r = http_send(
	    &(struct http_request){
	        .url = url,
	        .what = "MAAS signal",
	        .opts = o,
	        .prepare = prepare_signal,
	        .again = signal_again,
	        .ctx = &s,
	        .redact = {p->power_pass, c->token_secret},
	    },
	    res, err);
	/* After http_send: its libcurl handle refers to the form until it is cleaned up. */
	curl_mime_free(s.form);
	OPENSSL_cleanse(params, strlen(params));
	free(params);
	return r;
}

/* ---- cloud-config-url= ---- */

struct fetch_ctx {
	const char *url;
	struct maas_creds *creds;
};

static int prepare_get(void *ctx, CURL *curl, struct curl_slist **headers, struct prov_error *err)
{
	(void)ctx;
	(void)headers;
	(void)err;
	return curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : PROV_E_INTERNAL;
}

static int accept_cloud_config(void *ctx, const struct http_reply *reply, struct prov_error *err)
{
	struct fetch_ctx *f = ctx;
	char what[160];

	http_url_for_message(f->url, what, sizeof(what));
	if (reply->truncated)
		return prov_fail(err, PROV_E_BAD_INPUT, 0, "cloud-config from %s: larger than %d bytes",
				 what, HTTP_BODY_MAX);
	return maas_creds_from_yaml(reply->body, reply->body_len, what, f->creds, err);
}

int maas_creds_fetch(const char *url, const struct post_opts *o, struct maas_creds *c,
		     struct prov_error *err)
{
	struct post_opts defaults;
	struct post_result res;
	struct fetch_ctx f = {.url = url, .creds = c};

	if (!o) {
		post_opts_default(&defaults);
		o = &defaults;
	}
	return http_send(
		&(struct http_request){
			.url = url,
			.what = "GET",
			.opts = o,
			.prepare = prepare_get,
			.accept = accept_cloud_config,
			.ctx = &f,
		},
		&res, err);
}
