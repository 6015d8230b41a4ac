/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin control mode with a provisioning certificate: loading and checking the certificate,
 * AdminSetup, the TLS sequence of AMT 19+ (StartConfigurationHBased), UpgradeClientToAdmin, and
 * user consent. Key material is OpenSSL's, kept in memory and freed (wiped) with the struct.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acm.h"
#include "password.h"

#define ADMIN_USER           "admin"
#define PFX_MAX              (256 * 1024)
#define SECRET_FILE_MAX      1024
#define CHAIN_MAX            8
#define MC_NONCE_LEN         20 /* McNonce: 20 random bytes (PROTOCOL.md section 5) */
#define NONCE_B64_MAX        128
#define SIGNATURE_B64_MAX    1400 /* RSA up to 8192 bits */
#define DIGEST_A1_TYPE       "2"  /* NetAdminPassEncryptionType: HTTP Digest MD5 A1 */
#define SIGNING_RSA_SHA256   "2"  /* SigningAlgorithm: RSA-SHA2-256 */
#define UNPROVISION_PARTIAL  "1"  /* AMT_SetupAndConfigurationService.Unprovision mode */
#define OPT_IN_NONE          "0"  /* IPS_OptInService.OptInRequired: no user consent */
#define AMT_PROVISIONING_OID "2.16.840.1.113741.1.2.3"
#define AMT_PROVISIONING_OU  "Intel(R) Client Setup Certificate"

/* AMT_* methods answer PT_STATUS codes (AMT SDK): these are the ones activation meets. */
#define PT_STATUS_INVALID_PASSWORD 2054u /* 0x806 */
#define PT_STATUS_DATA_MISSING     2057u /* 0x809: essential data missing on CommitChanges */

struct acm_cert {
	EVP_PKEY *key;
	X509 *leaf;
	STACK_OF(X509) * chain; /* the leaf's issuer first, the self-signed root last */
	struct wsman_tls_identity identity;
	char leaf_cn[256];
	char root_name[256];
	uint8_t leaf_sha256[32];
	uint8_t root_sha256[32];
	uint8_t root_sha384[48];
	uint8_t root_sha512[64];
};

/* ---- reading files ---- */

/* Up to CAP-1 bytes of PATH into BUF (NUL-terminated). 0, -EFBIG, or -errno. */
static int read_small(const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	int e = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap - 1) {
			char extra;

			if (read(fd, &extra, 1) == 1)
				e = -EFBIG;
			break;
		}
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	if (e != 0)
		OPENSSL_cleanse(buf, cap);
	return e;
}

/* ---- the provisioning certificate ---- */

static void name_of(X509 *x, char *out, size_t cap)
{
	X509_NAME *n = X509_get_subject_name(x);

	if (X509_NAME_get_text_by_NID(n, NID_commonName, out, (int)cap) <= 0 &&
	    !X509_NAME_oneline(n, out, (int)cap))
		snprintf(out, cap, "(no name)");
}

static bool self_signed(X509 *x)
{
	return X509_check_issued(x, x) == X509_V_OK;
}

/* The leaf's issuers from EXTRA, in order, up to the self-signed root. */
static int order_chain(struct acm_cert *c, STACK_OF(X509) * extra, const char *path,
                       struct prov_error *err)
{
	char name[256];
	X509 *cur = c->leaf;

	c->chain = sk_X509_new_null();
	if (!c->chain)
		return prov_fail(err, PROV_E_INTERNAL, 0, "out of memory");
	if (self_signed(cur))
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "%s: the certificate is self-signed; AMT needs one issued under a "
		                 "root CA whose hash it holds",
		                 path);
	while (!self_signed(cur)) {
		X509 *issuer = NULL;

		for (int i = 0; extra && i < sk_X509_num(extra) && !issuer; i++)
			if (X509_check_issued(sk_X509_value(extra, i), cur) == X509_V_OK)
				issuer = sk_X509_value(extra, i);
		if (!issuer) {
			name_of(cur, name, sizeof(name));
			return prov_fail(err, PROV_E_BAD_INPUT, 0,
			                 "%s: the chain stops at \"%s\": the file must hold every "
			                 "certificate up to the self-signed root",
			                 path, name);
		}
		if (sk_X509_num(c->chain) == CHAIN_MAX)
			return prov_fail(err, PROV_E_BAD_INPUT, 0,
			                 "%s: the chain is longer than %d certificates", path,
			                 CHAIN_MAX);
		if (X509_up_ref(issuer) != 1 || sk_X509_push(c->chain, issuer) <= 0) {
			X509_free(issuer);
			return prov_fail(err, PROV_E_INTERNAL, 0, "out of memory");
		}
		cur = issuer;
	}
	return 0;
}

/* serverAuth, and AMT's provisioning OID or OU (what AMT looks for in a provisioning leaf). */
static bool has_provisioning_usage(X509 *leaf)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
	X509_NAME *subject = X509_get_subject_name(leaf);
	bool server = false, amt = false;
	char oid[64];
	int i = -1;

	for (int k = 0; eku && k < sk_ASN1_OBJECT_num(eku); k++) {
		ASN1_OBJECT *o = sk_ASN1_OBJECT_value(eku, k);

		if (OBJ_obj2nid(o) == NID_server_auth)
			server = true;
		if (OBJ_obj2txt(oid, sizeof(oid), o, 1) > 0 &&
		    strcmp(oid, AMT_PROVISIONING_OID) == 0)
			amt = true;
	}
	EXTENDED_KEY_USAGE_free(eku);
	while ((i = X509_NAME_get_index_by_NID(subject, NID_organizationalUnitName, i)) >= 0) {
		const ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));

		if ((size_t)ASN1_STRING_length(d) == strlen(AMT_PROVISIONING_OU) &&
		    memcmp(ASN1_STRING_get0_data(d), AMT_PROVISIONING_OU,
		           strlen(AMT_PROVISIONING_OU)) == 0)
			amt = true;
	}
	return server && amt;
}

static bool fingerprints(struct acm_cert *c)
{
	X509 *root = sk_X509_value(c->chain, sk_X509_num(c->chain) - 1);
	unsigned int n;

	name_of(c->leaf, c->leaf_cn, sizeof(c->leaf_cn));
	name_of(root, c->root_name, sizeof(c->root_name));
	return X509_digest(c->leaf, EVP_sha256(), c->leaf_sha256, &n) == 1 &&
	       X509_digest(root, EVP_sha256(), c->root_sha256, &n) == 1 &&
	       X509_digest(root, EVP_sha384(), c->root_sha384, &n) == 1 &&
	       X509_digest(root, EVP_sha512(), c->root_sha512, &n) == 1;
}

/* Wrong password (the MAC does not verify with it), as opposed to an unreadable file. */
static bool wrong_password(PKCS12 *p12, const char *pass)
{
	if (!PKCS12_mac_present(p12))
		return false;
	if (PKCS12_verify_mac(p12, pass, -1))
		return false;
	return !(pass[0] == '\0' && PKCS12_verify_mac(p12, NULL, 0));
}

static int parse_pkcs12(struct acm_cert *c, const char *path, const char *data, size_t len,
                        const char *pass, STACK_OF(X509) * *extra, struct prov_error *err)
{
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	PKCS12 *p12 = bio ? d2i_PKCS12_bio(bio, NULL) : NULL;
	int r = 0;

	BIO_free(bio);
	if (!p12)
		r = prov_fail(err, PROV_E_BAD_INPUT, 0, "%s is not a PKCS#12 (.pfx) file", path);
	else if (wrong_password(p12, pass))
		r = prov_fail(err, PROV_E_BAD_INPUT, 0,
		              "%s: wrong password for the PKCS#12 file (it comes from "
		              "--provisioning-cert-password-file or AMT_ENLIST_PFX_PASSWORD)",
		              path);
	else if (!PKCS12_parse(p12, pass, &c->key, &c->leaf, extra))
		r = prov_fail(err, PROV_E_BAD_INPUT, 0,
		              "%s: cannot read the PKCS#12 file (an encryption OpenSSL does not "
		              "offer by default, such as RC2? export it again with AES)",
		              path);
	else if (!c->key || !c->leaf)
		r = prov_fail(err, PROV_E_BAD_INPUT, 0,
		              "%s: the PKCS#12 file holds no private key with its certificate",
		              path);
	PKCS12_free(p12);
	ERR_clear_error();
	return r;
}

static int check_material(struct acm_cert *c, const char *path, struct prov_error *err)
{
	if (EVP_PKEY_get_base_id(c->key) != EVP_PKEY_RSA)
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "%s: the key is not RSA; AMT verifies the setup signature with "
		                 "RSA and SHA-256",
		                 path);
	if (X509_check_private_key(c->leaf, c->key) != 1) {
		ERR_clear_error();
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "%s: the private key does not belong to the certificate", path);
	}
	if (!has_provisioning_usage(c->leaf))
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "%s: not an AMT provisioning certificate: it needs the serverAuth "
		                 "usage and either the usage " AMT_PROVISIONING_OID
		                 " or the OU \"" AMT_PROVISIONING_OU "\"",
		                 path);
	return 0;
}

/* The PKCS#12 password: the first line of its file, or the environment's value, or none. */
static int pfx_password(const struct prov_activate_opts *o, char *out, size_t cap,
                        struct prov_error *err)
{
	const char *file = o->provisioning_cert_password_file;
	const char *value = o->provisioning_cert_password ? o->provisioning_cert_password : "";
	int r;

	if (!file) {
		if (strlen(value) >= cap)
			return prov_fail(err, PROV_E_BAD_INPUT, 0,
			                 "the PKCS#12 password is longer than %zu characters",
			                 cap - 1);
		memcpy(out, value, strlen(value) + 1);
		return 0;
	}
	r = password_read_line(file, out, cap);
	if (r != 0)
		return prov_fail(err, PROV_E_BAD_INPUT, 0,
		                 "cannot read provisioning certificate password file %s: %s", file,
		                 strerror(-r));
	return 0;
}

int acm_cert_load(const struct prov_activate_opts *o, struct acm_cert **out, struct prov_error *err)
{
	struct acm_cert *c = calloc(1, sizeof(*c));
	STACK_OF(X509) *extra = NULL;
	char *data = malloc(PFX_MAX + 1);
	char pass[SECRET_FILE_MAX];
	const char *path = o->provisioning_cert;
	size_t len = 0;
	int r;

	*out = NULL;
	pass[0] = '\0';
	if (!c || !data) {
		free(c);
		free(data);
		return prov_fail(err, PROV_E_INTERNAL, 0, "out of memory");
	}
	if (!path) {
		r = prov_fail(err, PROV_E_BAD_INPUT, 0,
		              "admin control mode needs --provisioning-cert FILE.pfx");
		goto done;
	}
	r = pfx_password(o, pass, sizeof(pass), err);
	if (r != 0)
		goto done;
	r = read_small(path, data, PFX_MAX + 1, &len);
	if (r != 0) {
		r = prov_fail(err, PROV_E_BAD_INPUT, 0,
		              "cannot read provisioning certificate %s: %s", path,
		              r == -EFBIG ? "larger than a PKCS#12 file can be" : strerror(-r));
		goto done;
	}
	r = parse_pkcs12(c, path, data, len, pass, &extra, err);
	if (r == 0)
		r = check_material(c, path, err);
	if (r == 0)
		r = order_chain(c, extra, path, err);
	if (r == 0 && !fingerprints(c))
		r = prov_fail(err, PROV_E_INTERNAL, 0, "cannot hash the certificates");
	if (r == 0) {
		c->identity = (struct wsman_tls_identity){c->leaf, c->key, c->chain};
		*out = c;
		c = NULL;
	}
done:
	sk_X509_pop_free(extra, X509_free);
	OPENSSL_cleanse(pass, sizeof(pass));
	OPENSSL_clear_free(data, PFX_MAX + 1);
	acm_cert_free(c);
	return r;
}

void acm_cert_free(struct acm_cert *c)
{
	if (!c)
		return;
	EVP_PKEY_free(c->key); /* OpenSSL clears the key's numbers when it frees them */
	X509_free(c->leaf);
	sk_X509_pop_free(c->chain, X509_free);
	OPENSSL_clear_free(c, sizeof(*c));
}

/* ---- checks before anything changes ---- */

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static bool same_hash(const struct acm_cert *c, const struct amthi_cert_hash *h)
{
	switch (h->hash_len) {
	case 32:
		return memcmp(h->hash, c->root_sha256, 32) == 0;
	case 48:
		return memcmp(h->hash, c->root_sha384, 48) == 0;
	case 64:
		return memcmp(h->hash, c->root_sha512, 64) == 0;
	default:
		return false;
	}
}

/* CN equals SUFFIX, or ends with "." SUFFIX (case-insensitive; a trailing dot is ignored). */
static bool domain_matches(const char *cn, const char *suffix)
{
	size_t n = strlen(cn), m = strlen(suffix);

	if (m > 0 && suffix[m - 1] == '.')
		m--;
	if (m == 0 || n < m)
		return false;
	if (strncasecmp(cn + n - m, suffix, m) != 0)
		return false;
	return n == m || cn[n - m - 1] == '.';
}

int acm_check(const struct acm_cert *c, const struct amt_state *st, const char *dns_suffix,
              bool *domain_unchecked, struct prov_error *err)
{
	char fp[65];
	bool inactive = false;
	const char *suffix = st->dns_suffix[0] ? st->dns_suffix : dns_suffix;

	*domain_unchecked = false;
	for (unsigned i = 0; i < st->hash_count; i++) {
		if (!same_hash(c, &st->hashes[i]))
			continue;
		if (st->hashes[i].is_active)
			goto root_ok;
		inactive = true;
	}
	hex(c->root_sha256, sizeof(c->root_sha256), fp);
	return prov_fail(err, PROV_E_UNTRUSTED_ROOT, 0,
	                 "the provisioning certificate's root \"%.80s\" (SHA-256 %s) is %s AMT's "
	                 "%u certificate hashes; AMT would refuse it; AMT is left untouched",
	                 c->root_name, fp, inactive ? "among, but not active in," : "not among",
	                 st->hash_count);
root_ok:
	if (!suffix || !suffix[0]) {
		*domain_unchecked = true;
		return 0;
	}
	if (!domain_matches(c->leaf_cn, suffix))
		return prov_fail(
		    err, PROV_E_REFUSED, 0,
		    "the provisioning certificate is for \"%.80s\", which is not under "
		    "AMT's DNS suffix \"%.80s\" (%s); AMT would refuse it; AMT is left "
		    "untouched",
		    c->leaf_cn, suffix, st->dns_suffix[0] ? "its PKI DNS suffix" : "--dns-suffix");
	return 0;
}

/* ---- pieces of the conversation ---- */

static size_t b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	if (cap < 4 * ((n + 2) / 3) + 1)
		return 0;
	return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Standard base64 (padding required) into OUT; the decoded length, or 0 on anything odd. */
static size_t b64_decode(const char *in, uint8_t *out, size_t cap)
{
	size_t n = strlen(in), pad = 0;
	int len;

	if (n == 0 || n % 4 != 0 || n / 4 * 3 > cap)
		return 0;
	if (in[n - 1] == '=')
		pad = in[n - 2] == '=' ? 2 : 1;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	return len < 0 || (size_t)len < pad ? 0 : (size_t)len - pad;
}

static const char *return_meaning(const char *method, unsigned rv)
{
	static const char *const setup[] = {
	    "success",
	    "internal error",
	    "invalid state",
	    "invalid parameter",
	    "method disabled",
	    ("authentication failed: AMT did not accept the signature over its "
	     "ConfigurationNonce (a stale or replayed nonce: another tool asked AMT for a new "
	     "one meanwhile?)"),
	    "flash write limit reached",
	};
	static const char *const chain[] = {
	    "success",
	    "invalid parameter",
	    "internal error",
	    "invalid state",
	    ("certificate verification failed: AMT does not accept the chain (its root hash, a "
	     "signature, the dates, the provisioning usage, or the leaf's domain against AMT's "
	     "DNS suffix)"),
	    "the chain is too long",
	};

	if (strcmp(method, "AddNextCertInChain") == 0)
		return rv < sizeof(chain) / sizeof(chain[0]) ? chain[rv] : "unknown error";
	if (strcmp(method, "AdminSetup") == 0 || strcmp(method, "UpgradeClientToAdmin") == 0)
		return rv < sizeof(setup) / sizeof(setup[0]) ? setup[rv] : "unknown error";
	switch (rv) {
	case 1:
		return "internal error";
	case 16:
		return "not permitted";
	case 36:
		return "invalid parameter";
	case PT_STATUS_INVALID_PASSWORD:
		return "invalid password: AMT's rules are 8-32 characters with a digit, an upper- "
		       "and a lower-case letter and a symbol";
	case PT_STATUS_DATA_MISSING:
		return "essential data missing: AMT needs the MEBx password set before "
		       "CommitChanges";
	default:
		return "unknown error";
	}
}

/* Invoke; a non-zero ReturnValue fails with its meaning. LABEL names the call in the message. */
static int call(struct wsman_client *c, const char *uri, const char *method, const char *label,
                const struct wsman_param *params, size_t n, struct prov_error *err)
{
	struct wsman_error we;
	unsigned rv;
	int r = activate_invoke(c, uri, method, params, n, &rv, &we, err);

	if (r != 0)
		return r;
	if (rv != 0)
		return prov_fail(err, PROV_E_ACTIVATION, 0, "%s: AMT returned %u (%s)",
		                 label ? label : method, rv, return_meaning(method, rv));
	return 0;
}

/* WE (when not NULL) says how the exchange failed. */
static int get_text(struct wsman_client *c, const char *uri, const char *field, char *out,
                    size_t cap, struct wsman_error *we, struct prov_error *err)
{
	const char *cls = strrchr(uri, '/') + 1;
	struct wsman_error own = {0};
	xmlDocPtr doc = NULL;
	char what[128];
	int r;

	if (!we)
		we = &own;
	r = wsman_get(c, uri, &doc, we);
	if (r == 0)
		r = wsman_body_text(doc, field, out, cap);
	xmlFreeDoc(doc);
	if (r == 0)
		return 0;
	if (r == WSMAN_E_PARSE && !we->msg[0])
		return prov_fail(err, PROV_E_ACTIVATION, 0, "%s has no %s", cls, field);
	snprintf(what, sizeof(what), "reading %s.%s failed", cls, field);
	return activate_wsman_failure(what, we, err);
}

static int local_account(struct prov_session *s, struct amthi_local_account *acct,
                         struct prov_error *err)
{
	struct mei_dev *dev;
	int r = session_amthi(s, &dev, err);

	if (r != 0)
		return r < 0 && err->msg[0]
		           ? r
		           : prov_fail(err, PROV_E_ME_UNAVAILABLE, r, "AMTHI lost");
	r = amthi_get_local_account(dev, acct);
	if (r != 0)
		return prov_fail(err, PROV_E_ME_UNAVAILABLE, r, "GetLocalSystemAccount failed: %s",
		                 mei_strerror(r));
	return 0;
}

/* A client as the local system account (pre-provisioning and AMT's own provisioning). */
static int client_as_local(struct prov_session *s, const struct wsman_target *t,
                           struct wsman_client **c, struct prov_error *err)
{
	struct amthi_local_account acct;
	int r = local_account(s, &acct, err);

	if (r == 0)
		r = activate_client(t, acct.username, acct.password, c, err);
	OPENSSL_cleanse(&acct, sizeof(acct));
	return r;
}

/* AddNextCertInChain, leaf first, root last, as base64 DER. */
static int add_chain(struct wsman_client *wc, const struct acm_cert *c, struct prov_error *err)
{
	int n = sk_X509_num(c->chain);
	int r = 0;

	for (int i = -1; r == 0 && i < n; i++) {
		X509 *x = i < 0 ? c->leaf : sk_X509_value(c->chain, i);
		unsigned char *der = NULL;
		int dlen = i2d_X509(x, &der);
		size_t cap = dlen > 0 ? 4 * (((size_t)dlen + 2) / 3) + 1 : 0;
		char *b64 = cap ? malloc(cap) : NULL;
		char label[160], name[96];

		if (!b64 || b64_encode(der, (size_t)dlen, b64, cap) == 0) {
			r = prov_fail(err, PROV_E_INTERNAL, 0, "cannot encode a certificate");
		} else {
			const struct wsman_param p[] = {
			    {"NextCertificate", b64},
			    {"IsLeafCertificate", i < 0 ? "true" : "false"},
			    {"IsRootCertificate", i == n - 1 ? "true" : "false"},
			};

			name_of(x, name, sizeof(name));
			snprintf(label, sizeof(label), "AddNextCertInChain (%s \"%s\")",
			         i < 0        ? "leaf"
			         : i == n - 1 ? "root"
			                      : "intermediate",
			         name);
			r = call(wc, IPS_URI_HOST_BASED_SETUP, "AddNextCertInChain", label, p, 3,
			         err);
		}
		free(b64);
		OPENSSL_free(der);
	}
	return r;
}

/* RSA PKCS#1 v1.5 with SHA-256 over FW || MC, in base64. */
static int sign_nonces(const struct acm_cert *c, const uint8_t *fw, size_t fw_len,
                       const uint8_t *mc, size_t mc_len, char *out, size_t cap,
                       struct prov_error *err)
{
	uint8_t msg[NONCE_B64_MAX + MC_NONCE_LEN], sig[1024];
	size_t sig_len = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok;

	memcpy(msg, fw, fw_len);
	memcpy(msg + fw_len, mc, mc_len);
	ok = md && EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, c->key) == 1 &&
	     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
	     EVP_DigestSign(md, sig, &sig_len, msg, fw_len + mc_len) == 1 &&
	     b64_encode(sig, sig_len, out, cap) > 0;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok ? 0 : prov_fail(err, PROV_E_INTERNAL, 0, "signing the nonces failed");
}

/*
 * Read AMT's fresh ConfigurationNonce, make a McNonce, sign both: the McNonce and the signature
 * in base64 into MC_B64 and SIG_B64.
 */
static int nonce_and_signature(struct wsman_client *wc, const struct acm_cert *c, char *mc_b64,
                               size_t mc_cap, char *sig_b64, size_t sig_cap, struct prov_error *err)
{
	char nonce_b64[NONCE_B64_MAX];
	uint8_t fw[NONCE_B64_MAX], mc[MC_NONCE_LEN];
	size_t fw_len;
	int r = get_text(wc, IPS_URI_HOST_BASED_SETUP, "ConfigurationNonce", nonce_b64,
	                 sizeof(nonce_b64), NULL, err);

	if (r != 0)
		return r;
	fw_len = b64_decode(nonce_b64, fw, sizeof(fw));
	if (fw_len == 0 || fw_len > NONCE_B64_MAX)
		return prov_fail(err, PROV_E_ACTIVATION, 0,
		                 "AMT's ConfigurationNonce is not base64 of a nonce");
	if (RAND_bytes(mc, sizeof(mc)) != 1)
		return prov_fail(err, PROV_E_INTERNAL, 0, "the random source failed: no McNonce");
	r = sign_nonces(c, fw, fw_len, mc, sizeof(mc), sig_b64, sig_cap, err);
	if (r == 0 && b64_encode(mc, sizeof(mc), mc_b64, mc_cap) == 0)
		r = prov_fail(err, PROV_E_INTERNAL, 0, "cannot encode the McNonce");
	OPENSSL_cleanse(mc, sizeof(mc));
	return r;
}

static bool is_acm_post(uint32_t mode, uint32_t state)
{
	return mode == AMTHI_CONTROL_ACM && state == AMTHI_PROVISIONING_POST;
}

static int confirm_acm(struct prov_session *s, const struct prov_activate_opts *o, const char *what,
                       struct prov_error *err)
{
	uint32_t mode = 0, state = 0;

	if (activate_wait_modes(s, is_acm_post, o->confirm_ms, &mode, &state, err) == 0)
		return 0;
	return prov_fail(err, PROV_E_ACTIVATION, 0,
	                 "%s but AMT did not reach admin control mode and provisioning state post "
	                 "within %d s (now %s, %s)",
	                 what, o->confirm_ms / 1000, prov_control_mode_name(mode),
	                 prov_provisioning_state_name(state));
}

/* base64 of the binary MD5("admin:REALM:PASSWORD"): SetAdminAclEntryEx's DigestPassword. */
static int digest_base64(const char *realm, const char *pw, char out[25], struct prov_error *err)
{
	char a1[33];
	uint8_t bin[16];
	size_t n = 0;
	int r = password_digest_a1(ADMIN_USER, realm, pw, a1);

	if (r == 0 &&
	    (OPENSSL_hexstr2buf_ex(bin, sizeof(bin), &n, a1, '\0') != 1 || n != sizeof(bin)))
		r = -1;
	if (r == 0 && b64_encode(bin, sizeof(bin), out, 25) == 0)
		r = -1;
	OPENSSL_cleanse(a1, sizeof(a1));
	OPENSSL_cleanse(bin, sizeof(bin));
	return r == 0 ? 0 : prov_fail(err, PROV_E_INTERNAL, 0, "MD5 is not available");
}

static int set_mebx(struct wsman_client *wc, const struct prov_credentials *cred,
                    struct prov_error *err)
{
	const struct wsman_param p[] = {{"Password", cred->mebx_password}};

	return call(wc, AMT_URI_SETUP_AND_CONFIG, "SetMEBxPassword", NULL, p, 1, err);
}

/* ---- pre-provisioning to admin control mode ---- */

/* Firmware without TLS locally: certificate chain, AdminSetup, then the MEBx password. */
static int setup_with_admin_setup(struct prov_session *s, const struct prov_activate_opts *o,
                                  const struct wsman_target *t, const struct acm_cert *c,
                                  struct prov_credentials *cred, bool *in_acm,
                                  struct prov_error *err)
{
	struct wsman_client *wc = NULL;
	char realm[128], a1[33], mc[64], sig[SIGNATURE_B64_MAX];
	int r = client_as_local(s, t, &wc, err);

	if (r == 0)
		r = get_text(wc, AMT_URI_GENERAL_SETTINGS, "DigestRealm", realm, sizeof(realm),
		             NULL, err);
	if (r == 0)
		r = add_chain(wc, c, err);
	if (r == 0)
		r = nonce_and_signature(wc, c, mc, sizeof(mc), sig, sizeof(sig), err);
	if (r == 0 && password_digest_a1(ADMIN_USER, realm, cred->password, a1) != 0)
		r = prov_fail(err, PROV_E_INTERNAL, 0, "MD5 is not available");
	if (r == 0) {
		const struct wsman_param p[] = {
		    {"NetAdminPassEncryptionType", DIGEST_A1_TYPE},
		    {"NetworkAdminPassword", a1},
		    {"McNonce", mc},
		    {"SigningAlgorithm", SIGNING_RSA_SHA256},
		    {"DigitalSignature", sig},
		};

		r = call(wc, IPS_URI_HOST_BASED_SETUP, "AdminSetup", NULL, p, 5, err);
	}
	OPENSSL_cleanse(a1, sizeof(a1));
	wsman_client_free(wc);
	wc = NULL;
	if (r == 0)
		r = confirm_acm(s, o, "AMT accepted AdminSetup", err);
	if (r != 0)
		return r;
	*in_acm = true;
	r = activate_client(t, ADMIN_USER, cred->password, &wc, err);
	if (r == 0)
		r = set_mebx(wc, cred, err);
	wsman_client_free(wc);
	return r;
}

/* CommitChanges restarts AMT's network stack: a reply that never comes is no verdict. */
static int commit(struct wsman_client *wc, struct prov_error *err)
{
	struct wsman_error we;
	unsigned rv;
	int r =
	    activate_invoke(wc, AMT_URI_SETUP_AND_CONFIG, "CommitChanges", NULL, 0, &rv, &we, err);

	if (r != 0 && (we.code == WSMAN_E_CONNECT || we.code == WSMAN_E_TIMEOUT)) {
		memset(err, 0, sizeof(*err));
		return 0; /* the modes over AMTHI decide */
	}
	if (r == 0 && rv != 0)
		r = prov_fail(err, PROV_E_ACTIVATION, 0, "CommitChanges: AMT returned %u (%s)", rv,
		              return_meaning("CommitChanges", rv));
	return r;
}

/*
 * The first request over mutual TLS: AMT refusing it (the handshake, or AccessDenied) is AMT
 * refusing the provisioning certificate.
 */
static int first_exchange(struct wsman_client *wc, char *realm, size_t cap, struct prov_error *err)
{
	struct wsman_error we = {0};
	int r = get_text(wc, AMT_URI_GENERAL_SETTINGS, "DigestRealm", realm, cap, &we, err);

	if (r != 0 && (we.code == WSMAN_E_TLS ||
	               (we.code == WSMAN_E_FAULT && strstr(we.msg, "AccessDenied"))))
		return prov_fail(err, PROV_E_ACTIVATION, 0,
		                 "AMT refused the provisioning certificate over mutual TLS (AMT "
		                 "checks its chain up to an active root hash, its provisioning "
		                 "usage, and its domain against AMT's DNS suffix): %s",
		                 we.msg);
	return r;
}

/*
 * Firmware with TLS on its local ports: StartConfigurationHBased with the leaf's hash, then
 * mutual TLS (the provisioning certificate as the client's, AMT's certificate pinned to the hash
 * it names) for SetAdminAclEntryEx, SetMEBxPassword and CommitChanges.
 */
static int setup_with_tls(struct prov_session *s, const struct prov_activate_opts *o,
                          struct wsman_target *t, const struct acm_cert *c,
                          struct prov_credentials *cred, bool *started, struct prov_error *err)
{
	const char *suffixes[1] = {o->dns_suffix};
	struct amthi_hbased_response resp;
	struct wsman_client *wc = NULL;
	struct mei_dev *dev;
	char realm[128], digest[25];
	int r = session_amthi(s, &dev, err);

	if (r != 0)
		return r < 0 && err->msg[0]
		           ? r
		           : prov_fail(err, PROV_E_ME_UNAVAILABLE, r, "AMTHI lost");
	/* a reply lost to a reset may still have started it: StopConfiguration then too */
	*started = true;
	r = amthi_start_configuration_hbased(dev, AMTHI_HASH_SHA256, c->leaf_sha256,
	                                     sizeof(c->leaf_sha256), false, suffixes,
	                                     o->dns_suffix ? 1 : 0, &resp);
	if (r != 0)
		return prov_fail(err, PROV_E_ACTIVATION, r, "StartConfigurationHBased refused: %s",
		                 mei_strerror(r));
	if (resp.hash_len == 32 || resp.hash_len == 48) {
		memcpy(t->pin, resp.hash, resp.hash_len);
		t->pin_len = resp.hash_len;
	}
	t->identity = &c->identity;
	r = client_as_local(s, t, &wc, err);
	if (r == 0)
		r = first_exchange(wc, realm, sizeof(realm), err);
	if (r == 0)
		r = digest_base64(realm, cred->password, digest, err);
	if (r == 0) {
		const struct wsman_param p[] = {{"Username", ADMIN_USER},
		                                {"DigestPassword", digest}};

		r = call(wc, AMT_URI_AUTHORIZATION, "SetAdminAclEntryEx", NULL, p, 2, err);
	}
	OPENSSL_cleanse(digest, sizeof(digest));
	wsman_client_free(wc);
	wc = NULL;
	if (r == 0)
		r = activate_client(t, ADMIN_USER, cred->password, &wc, err);
	if (r == 0)
		r = set_mebx(wc, cred, err);
	if (r == 0)
		r = commit(wc, err);
	wsman_client_free(wc);
	if (r == 0)
		r = confirm_acm(s, o, "AMT accepted CommitChanges", err);
	return r;
}

/* StopConfiguration, and AMT back in pre-provisioning: true when both happened. */
static bool stop_configuration(struct prov_session *s, const struct prov_activate_opts *o)
{
	struct prov_error probe = {0};
	struct mei_dev *dev;
	uint32_t mode, state;

	if (session_amthi(s, &dev, &probe) != 0 || amthi_stop_configuration(dev) != 0)
		return false;
	return activate_wait_modes(s, activate_is_pre, o->settle_ms, &mode, &state, &probe) == 0;
}

/* Admin control mode without its MEBx password: back to pre-provisioning (as admin). */
static bool unprovision(struct prov_session *s, const struct prov_activate_opts *o,
                        const struct wsman_target *t, const struct prov_credentials *cred)
{
	const struct wsman_param p[] = {{"ProvisioningMode", UNPROVISION_PARTIAL}};
	struct prov_error probe = {0};
	struct wsman_client *wc = NULL;
	uint32_t mode, state;
	int r = activate_client(t, ADMIN_USER, cred->password, &wc, &probe);

	if (r == 0)
		r = call(wc, AMT_URI_SETUP_AND_CONFIG, "Unprovision", NULL, p, 1, &probe);
	wsman_client_free(wc);
	return r == 0 &&
	       activate_wait_modes(s, activate_is_pre, o->settle_ms, &mode, &state, &probe) == 0;
}

int acm_setup(struct prov_session *s, const struct prov_activate_opts *o, const struct acm_cert *c,
              struct prov_credentials *cred, bool *rolled_back, struct prov_error *err)
{
	struct wsman_target t;
	bool started = false, in_acm = false;
	int r = activate_target(s, o, &t, err);

	*rolled_back = false;
	if (r != 0)
		return r;
	cred->tls = t.tls;
	if (t.tls) {
		r = setup_with_tls(s, o, &t, c, cred, &started, err);
		if (r != 0 && started)
			*rolled_back = stop_configuration(s, o);
	} else {
		r = setup_with_admin_setup(s, o, &t, c, cred, &in_acm, err);
		if (r != 0 && in_acm)
			*rolled_back = unprovision(s, o, &t, cred);
	}
	return r;
}

/* ---- client to admin control mode ---- */

int acm_upgrade(struct prov_session *s, const struct prov_activate_opts *o,
                const struct acm_cert *c, struct prov_credentials *cred, struct prov_error *err)
{
	struct wsman_client *wc = NULL;
	struct wsman_target t;
	char mc[64], sig[SIGNATURE_B64_MAX];
	int r = activate_target(s, o, &t, err);

	if (r == 0) {
		cred->tls = t.tls;
		r = activate_client(&t, ADMIN_USER, cred->password, &wc, err);
	}
	if (r == 0)
		r = add_chain(wc, c, err);
	if (r == 0)
		r = nonce_and_signature(wc, c, mc, sizeof(mc), sig, sizeof(sig), err);
	if (r == 0) {
		const struct wsman_param p[] = {
		    {"McNonce", mc},
		    {"SigningAlgorithm", SIGNING_RSA_SHA256},
		    {"DigitalSignature", sig},
		};

		r = call(wc, IPS_URI_HOST_BASED_SETUP, "UpgradeClientToAdmin", NULL, p, 3, err);
	}
	wsman_client_free(wc);
	wc = NULL;
	if (r == 0)
		r = confirm_acm(s, o, "AMT accepted UpgradeClientToAdmin", err);
	if (r == 0)
		r = activate_client(&t, ADMIN_USER, cred->password, &wc, err);
	if (r == 0)
		r = set_mebx(wc, cred, err);
	wsman_client_free(wc);
	return r;
}

/* ---- user consent ---- */

static const char *const opt_in_fields[] = {
    "CanModifyOptInPolicy",    "CreationClassName",   "ElementName",   "Name",
    "OptInCodeTimeout",        "OptInDisplayTimeout", "OptInRequired", "OptInState",
    "SystemCreationClassName", "SystemName",
};
#define N_OPT_IN_FIELDS (sizeof(opt_in_fields) / sizeof(opt_in_fields[0]))

static void consent_required(struct prov_credentials *cred, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void consent_required(struct prov_credentials *cred, const char *fmt, ...)
{
	va_list ap;

	cred->user_consent = "required";
	va_start(ap, fmt);
	(void)vsnprintf(cred->consent_note, sizeof(cred->consent_note), fmt, ap); /* cut if long */
	va_end(ap);
}

/*
 * The instance as AMT gave it, OptInRequired set to 0, put back whole (WS-Transfer Put replaces
 * the instance).
 */
static void switch_consent_off(struct wsman_client *wc, xmlDocPtr got,
                               struct prov_credentials *cred)
{
	struct wsman_param p[N_OPT_IN_FIELDS];
	char values[N_OPT_IN_FIELDS][128], now[16] = "";
	struct wsman_error we = {0};
	xmlDocPtr doc = NULL;
	size_t n = 0;

	for (size_t i = 0; i < N_OPT_IN_FIELDS; i++) {
		if (strcmp(opt_in_fields[i], "OptInRequired") == 0)
			snprintf(values[i], sizeof(values[i]), OPT_IN_NONE);
		else if (wsman_body_text(got, opt_in_fields[i], values[i], sizeof(values[i])) != 0)
			continue;
		p[n++] = (struct wsman_param){opt_in_fields[i], values[i]};
	}
	if (wsman_put(wc, IPS_URI_OPT_IN, "IPS_OptInService", p, n, &doc, &we) != 0) {
		consent_required(cred, "AMT refused to switch it off: %s", we.msg);
	} else if (wsman_body_text(doc, "OptInRequired", now, sizeof(now)) == 0 &&
	           strcmp(now, OPT_IN_NONE) != 0) {
		consent_required(cred, "AMT kept OptInRequired %s", now);
	} else {
		cred->user_consent = "off";
	}
	xmlFreeDoc(doc);
}

void acm_user_consent(struct prov_session *s, const struct prov_activate_opts *o,
                      struct prov_credentials *cred)
{
	struct prov_error err = {0};
	struct wsman_error we = {0};
	struct wsman_client *wc = NULL;
	struct wsman_target t;
	xmlDocPtr doc = NULL;
	char required[16], can_modify[8] = "1";

	cred->consent_note[0] = '\0';
	if (activate_target(s, o, &t, &err) != 0 ||
	    activate_client(&t, ADMIN_USER, cred->password, &wc, &err) != 0) {
		consent_required(cred, "%s", err.msg);
		return;
	}
	if (wsman_get(wc, IPS_URI_OPT_IN, &doc, &we) != 0 ||
	    wsman_body_text(doc, "OptInRequired", required, sizeof(required)) != 0) {
		consent_required(cred, "reading IPS_OptInService failed: %s",
		                 we.msg[0] ? we.msg : "no OptInRequired");
	} else if (strcmp(required, OPT_IN_NONE) == 0) {
		cred->user_consent = "off";
	} else if (o->keep_user_consent) {
		consent_required(cred, "%s", "--keep-user-consent");
	} else if (wsman_body_text(doc, "CanModifyOptInPolicy", can_modify, sizeof(can_modify)) ==
	               0 &&
	           strcmp(can_modify, "1") != 0) {
		consent_required(cred, "%s", "AMT's policy does not let it be changed");
	} else {
		switch_consent_off(wc, doc, cred);
	}
	xmlFreeDoc(doc);
	wsman_client_free(wc);
}
