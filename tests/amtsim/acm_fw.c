/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin control mode as the firmware plays it, with OpenSSL: the provisioning certificate chain
 * handed in by AddNextCertInChain (leaf first) and verified when its root arrives (the root's
 * SHA-256 or SHA-384 among the active certificate hashes, every signature and date, serverAuth
 * with AMT's provisioning OID or OU on the leaf, the leaf's CN under AMT's DNS suffix); the
 * ConfigurationNonce (fresh on every Get, gone once used) and the signature over it and the
 * host's McNonce (a McNonce seen before is refused); StartConfigurationHBased and the client
 * certificate of the mutual TLS that follows it; the MEBx password rules.
 *
 * AMT's DNS suffix: the PKI DNS suffix (MEBx, GetDnsSuffix) when set; otherwise the suffixes the
 * host named in StartConfigurationHBased and the domain DHCP gave AMT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "mei.h"
#include "sim.h"
#include "wire.h"

#define CHAIN_MAX            4 /* a longer chain: CertChainLengthExceeded */
#define MC_NONCE_LEN         20
#define USED_NONCES          32
#define MAX_SUFFIXES         8
#define AMT_PROVISIONING_OID "2.16.840.1.113741.1.2.3"
#define AMT_PROVISIONING_OU  "Intel(R) Client Setup Certificate"
#define TRUSTED_NAME         "amtsim trusted CA"

/* AddNextCertInChain ReturnValues (go-wsman-messages hostbasedsetup). */
#define RV_OK            0u
#define RV_INVALID_PARAM 1u
#define RV_INVALID_STATE 3u
#define RV_CHAIN_LENGTH  5u
/* AdminSetup / UpgradeClientToAdmin ReturnValues. */
#define RV_SETUP_INVALID_STATE 2u
#define RV_SETUP_INVALID_PARAM 3u

struct sim_acm {
	X509 *chain[CHAIN_MAX];
	unsigned chain_len;
	bool complete; /* the root arrived and the chain verified */
	/* StartConfigurationHBased */
	uint8_t leaf_alg;
	uint8_t leaf_hash[64];
	char suffixes[MAX_SUFFIXES][SIM_NAME_MAX + 1];
	unsigned n_suffixes;
	/* McNonces already used */
	uint8_t used[USED_NONCES][MC_NONCE_LEN];
	unsigned used_count;
};

int sim_acm_init(struct amtsim *m)
{
	m->acm = calloc(1, sizeof(*m->acm));
	return m->acm ? 0 : -1;
}

static void chain_reset(struct sim_acm *a)
{
	for (unsigned i = 0; i < a->chain_len; i++)
		X509_free(a->chain[i]);
	a->chain_len = 0;
	a->complete = false;
}

void sim_acm_free(struct amtsim *m)
{
	if (!m->acm)
		return;
	chain_reset(m->acm);
	free(m->acm);
	m->acm = NULL;
}

/* ---- helpers ---- */

/* Standard base64 (padding required) into OUT; the decoded length, or 0. */
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

static bool digest_of(X509 *x, const EVP_MD *md, uint8_t *out, size_t want)
{
	unsigned int n = 0;

	return X509_digest(x, md, out, &n) == 1 && n == want;
}

/* The root's SHA-256 (or SHA-384) is an active certificate hash of the machine. */
static bool root_trusted(const struct amtsim *m, X509 *root)
{
	uint8_t h256[32], h384[48];

	if (!digest_of(root, EVP_sha256(), h256, sizeof(h256)) ||
	    !digest_of(root, EVP_sha384(), h384, sizeof(h384)))
		return false;
	for (unsigned i = 0; i < m->p.hash_count; i++) {
		const struct sim_cert_hash *h = &m->p.hashes[i];

		if (!h->is_active)
			continue;
		if ((h->hash_len == 32 && memcmp(h->hash, h256, 32) == 0) ||
		    (h->hash_len == 48 && memcmp(h->hash, h384, 48) == 0))
			return true;
	}
	return false;
}

static bool leaf_usage_ok(X509 *leaf)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
	X509_NAME *subject = X509_get_subject_name(leaf);
	bool server = false, amt = false;
	char oid[64];
	int i = -1;

	for (int k = 0; eku && k < sk_ASN1_OBJECT_num(eku); k++) {
		ASN1_OBJECT *o = sk_ASN1_OBJECT_value(eku, k);

		server = server || OBJ_obj2nid(o) == NID_server_auth;
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

static bool under(const char *cn, const char *suffix)
{
	size_t n = strlen(cn), k = strlen(suffix);

	if (k > 0 && suffix[k - 1] == '.')
		k--;
	if (k == 0 || n < k || strncasecmp(cn + n - k, suffix, k) != 0)
		return false;
	return n == k || cn[n - k - 1] == '.';
}

/* The leaf's CN under AMT's DNS suffix (see the top of this file). */
static bool domain_ok(const struct amtsim *m, X509 *leaf)
{
	const struct sim_acm *a = m->acm;
	char cn[256];

	if (X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn,
	                              sizeof(cn)) <= 0)
		return false;
	if (m->p.dns_suffix[0])
		return under(cn, m->p.dns_suffix);
	for (unsigned i = 0; m->hbased && i < a->n_suffixes; i++)
		if (under(cn, a->suffixes[i]))
			return true;
	return m->p.dhcp_domain[0] && under(cn, m->p.dhcp_domain);
}

/* CERTS[0] the leaf ... CERTS[N-1] the self-signed root: everything AMT checks of a chain. */
static bool chain_ok(const struct amtsim *m, X509 *const *certs, unsigned n)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509 *root = n >= 2 ? certs[n - 1] : NULL;
	bool ok = store && ctx && untrusted && root && X509_check_issued(root, root) == X509_V_OK &&
	          root_trusted(m, root) && X509_STORE_add_cert(store, root) == 1;

	for (unsigned i = 1; ok && i + 1 < n; i++)
		ok = sk_X509_push(untrusted, certs[i]) > 0;
	ok = ok && X509_STORE_CTX_init(ctx, store, certs[0], untrusted) == 1 &&
	     X509_verify_cert(ctx) == 1 && leaf_usage_ok(certs[0]) && domain_ok(m, certs[0]);
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

/* ---- AddNextCertInChain ---- */

unsigned sim_acm_add_cert(struct amtsim *m, const char *b64, bool leaf, bool root)
{
	struct sim_acm *a = m->acm;
	size_t cap = strlen(b64) / 4 * 3 + 3, len;
	uint8_t *der = malloc(cap);
	const unsigned char *p = der;
	X509 *x = NULL;
	unsigned rv = RV_OK;

	if (!der)
		return 2; /* internal error */
	len = b64_decode(b64, der, cap);
	if (len > 0)
		x = d2i_X509(NULL, &p, (long)len);
	free(der);
	ERR_clear_error();
	if (!x)
		return RV_INVALID_PARAM;
	if (leaf)
		chain_reset(a);
	if (!leaf && a->chain_len == 0) {
		rv = RV_INVALID_STATE; /* a chain starts with its leaf */
	} else if (a->chain_len == CHAIN_MAX) {
		rv = RV_CHAIN_LENGTH;
	} else {
		a->chain[a->chain_len++] = x;
		x = NULL;
		if (root && !(a->complete = chain_ok(m, a->chain, a->chain_len)))
			rv = SIM_RV_CERT_VERIFY;
	}
	X509_free(x);
	if (rv != RV_OK)
		chain_reset(a);
	return rv;
}

/* ---- nonces and the signature ---- */

void sim_acm_new_nonce(struct amtsim *m)
{
	sim_config_nonce(m->config_nonce, sizeof(m->config_nonce));
}

static bool seen(const struct sim_acm *a, const uint8_t *mc)
{
	unsigned n = a->used_count < USED_NONCES ? a->used_count : USED_NONCES;

	for (unsigned i = 0; i < n; i++)
		if (memcmp(a->used[i], mc, MC_NONCE_LEN) == 0)
			return true;
	return false;
}

static bool signature_ok(X509 *leaf, const uint8_t *msg, size_t len, const uint8_t *sig,
                         size_t sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	bool ok =
	    md &&
	    EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, X509_get0_pubkey(leaf)) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
	    EVP_DigestVerify(md, sig, sig_len, msg, len) == 1;

	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok;
}

unsigned sim_acm_check_signature(struct amtsim *m, const char *mc_nonce, const char *algorithm,
                                 const char *signature)
{
	struct sim_acm *a = m->acm;
	uint8_t msg[64 + MC_NONCE_LEN], mc[MC_NONCE_LEN + 3], sig[1100];
	size_t fw_len, mc_len, sig_len;
	unsigned rv = RV_OK;

	if (!a->complete)
		return RV_SETUP_INVALID_STATE;
	mc_len = b64_decode(mc_nonce, mc, sizeof(mc));
	sig_len = b64_decode(signature, sig, sizeof(sig));
	if (strcmp(algorithm, "2") != 0 || mc_len != MC_NONCE_LEN || sig_len == 0)
		return RV_SETUP_INVALID_PARAM;
	if (m->stale_nonce) {
		m->stale_nonce = false;
		sim_acm_new_nonce(m); /* another tool asked for one meanwhile */
	}
	fw_len = b64_decode(m->config_nonce, msg, 64);
	memcpy(msg + fw_len, mc, MC_NONCE_LEN);
	/* a McNonce serves once, whether its signature was good or not */
	if (seen(a, mc))
		rv = SIM_RV_AUTH_FAILED;
	else {
		memcpy(a->used[a->used_count++ % USED_NONCES], mc, MC_NONCE_LEN);
		if (!signature_ok(a->chain[0], msg, fw_len + MC_NONCE_LEN, sig, sig_len))
			rv = SIM_RV_AUTH_FAILED;
	}
	/* a nonce serves one attempt, whatever came of it */
	sim_acm_new_nonce(m);
	if (rv == RV_OK)
		chain_reset(a);
	return rv;
}

/* ---- StartConfigurationHBased and the mutual TLS after it ---- */

/* The host's DNS suffixes: NUL-ended names in the first LEN bytes of LIST. */
static bool take_suffixes(struct sim_acm *a, const uint8_t *list, uint32_t len)
{
	uint32_t at = 0;

	a->n_suffixes = 0;
	while (at < len) {
		const uint8_t *end = memchr(list + at, 0, len - at);
		size_t n = end ? (size_t)(end - (list + at)) : 0;

		if (!end || n == 0 || n > SIM_NAME_MAX || a->n_suffixes == MAX_SUFFIXES)
			return false;
		memcpy(a->suffixes[a->n_suffixes], list + at, n);
		a->suffixes[a->n_suffixes++][n] = '\0';
		at += (uint32_t)n + 1;
	}
	return true;
}

/* SHA-256 of the first certificate in AMT's TLS PEM. */
static bool amt_cert_hash(const struct amtsim *m, uint8_t out[32])
{
	BIO *bio = m->tls_cert_pem ? BIO_new_mem_buf(m->tls_cert_pem, -1) : NULL;
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	bool ok = x && digest_of(x, EVP_sha256(), out, 32);

	X509_free(x);
	BIO_free(bio);
	ERR_clear_error();
	return ok;
}

uint32_t sim_acm_start_hbased(struct amtsim *m, const uint8_t *payload, size_t len, uint8_t *alg,
                              uint8_t hash[64])
{
	struct cursor c = cursor_init(payload, len);
	struct sim_acm *a = m->acm;
	const uint8_t *list;
	uint8_t leaf_alg, vpn;
	uint32_t list_len;

	if (m->p.provisioning_state != AMTHI_PROVISIONING_PRE ||
	    m->p.control_mode != AMTHI_CONTROL_NONE)
		return AMTHI_STATUS_INVALID_AMT_MODE;
	if (!m->p.tls_enforced)
		return AMTHI_STATUS_NOT_PERMITTED; /* AdminSetup is the way without TLS */
	if (cur_u8(&c, &leaf_alg) < 0 || cur_bytes(&c, a->leaf_hash, 64) < 0 ||
	    cur_u8(&c, &vpn) < 0 || cur_u32le(&c, &list_len) < 0 ||
	    cur_ref(&c, &list, AMTHI_HBASED_SUFFIX_LIST) < 0 ||
	    list_len > AMTHI_HBASED_SUFFIX_LIST ||
	    (leaf_alg != AMTHI_HASH_SHA256 && leaf_alg != AMTHI_HASH_SHA384_OR_SHA512) || vpn > 1 ||
	    !take_suffixes(a, list, list_len))
		return AMTHI_STATUS_INVALID_PARAMETER;
	memset(hash, 0, 64);
	if (!amt_cert_hash(m, hash))
		return AMTHI_STATUS_INTERNAL_ERROR; /* no TLS certificate to offer */
	a->leaf_alg = leaf_alg;
	*alg = AMTHI_HASH_SHA256;
	chain_reset(a);
	sim_machine_start_hbased(m);
	return AMTHI_STATUS_SUCCESS;
}

/* The issuer of X among the trusted roots (--trust-ca), up-referenced, or NULL. */
static X509 *trusted_issuer(const struct amtsim *m, X509 *x)
{
	BIO *bio = m->trust_ca_pem ? BIO_new_mem_buf(m->trust_ca_pem, -1) : NULL;
	X509 *c, *found = NULL;

	while (bio && !found && (c = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (X509_check_issued(c, x) == X509_V_OK)
			found = c;
		else
			X509_free(c);
	}
	BIO_free(bio);
	ERR_clear_error();
	return found;
}

bool sim_acm_client_ok(struct amtsim *m, const uint8_t *const *der, const size_t *len, unsigned n)
{
	X509 *certs[CHAIN_MAX + 1] = {0};
	uint8_t hash[64] = {0};
	unsigned k = 0;
	bool ok = n > 0 && n <= CHAIN_MAX;

	for (unsigned i = 0; ok && i < n; i++) {
		const unsigned char *p = der[i];

		certs[k] = d2i_X509(NULL, &p, (long)len[i]);
		ok = certs[k++] != NULL;
	}
	pthread_mutex_lock(&m->lock);
	/* a client may leave its root out: the trusted one that issued its last certificate */
	if (ok && X509_check_issued(certs[k - 1], certs[k - 1]) != X509_V_OK) {
		certs[k] = trusted_issuer(m, certs[k - 1]);
		ok = certs[k] != NULL;
		k += ok ? 1 : 0;
	}
	if (ok) {
		size_t want = m->acm->leaf_alg == AMTHI_HASH_SHA256 ? 32 : 48;

		ok = m->hbased &&
		     digest_of(certs[0], want == 32 ? EVP_sha256() : EVP_sha384(), hash, want) &&
		     memcmp(hash, m->acm->leaf_hash, want) == 0 && chain_ok(m, certs, k);
	}
	pthread_mutex_unlock(&m->lock);
	for (unsigned i = 0; i < k; i++)
		X509_free(certs[i]);
	ERR_clear_error();
	return ok;
}

/* ---- the MEBx password ---- */

bool sim_mebx_password_ok(const char *pw)
{
	size_t n = strlen(pw);
	bool digit = false, upper = false, lower = false, symbol = false;

	if (n < 8 || n > 32)
		return false;
	for (const char *p = pw; *p; p++) {
		if (*p < 32 || *p > 126 || *p == ':' || *p == ',' || *p == '"')
			return false;
		digit = digit || (*p >= '0' && *p <= '9');
		upper = upper || (*p >= 'A' && *p <= 'Z');
		lower = lower || (*p >= 'a' && *p <= 'z');
		symbol = symbol || (!(*p >= '0' && *p <= '9') && !(*p >= 'A' && *p <= 'Z') &&
		                    !(*p >= 'a' && *p <= 'z') && *p != '_' && *p != ' ');
	}
	return digit && upper && lower && symbol;
}

/* ---- --trust-ca ---- */

static bool handle_used(const struct amtsim *m, uint32_t handle)
{
	for (unsigned i = 0; i < m->p.hash_count; i++)
		if (m->p.hashes[i].handle == handle)
			return true;
	return false;
}

int amtsim_trust_ca(struct amtsim *m, const char *pem_file, char *err, size_t errlen)
{
	FILE *f = fopen(pem_file, "re");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	uint8_t h[32];
	char *pem = NULL;
	long size = -1;
	int r = -1;

	if (!f)
		snprintf(err, errlen, "%s: %s", pem_file, strerror(errno));
	else if (!x || X509_check_issued(x, x) != X509_V_OK || !digest_of(x, EVP_sha256(), h, 32))
		snprintf(err, errlen, "%s: not a self-signed CA certificate (PEM)", pem_file);
	else if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 || size > 65536 ||
	         fseek(f, 0, SEEK_SET) != 0 || !(pem = calloc(1, (size_t)size + 1)) ||
	         fread(pem, 1, (size_t)size, f) != (size_t)size)
		snprintf(err, errlen, "%s: cannot read it", pem_file);
	else
		r = 0;
	if (f)
		(void)fclose(f); /* read-only: nothing to lose */
	X509_free(x);
	ERR_clear_error();
	if (r < 0) {
		free(pem);
		return -1;
	}
	pthread_mutex_lock(&m->lock);
	if (m->p.hash_count == SIM_MAX_HASHES) {
		r = -1;
		snprintf(err, errlen, "%s: the machine holds %u certificate hashes already",
		         pem_file, SIM_MAX_HASHES);
	} else {
		struct sim_cert_hash *e = &m->p.hashes[m->p.hash_count];
		uint32_t handle = 0;

		/* the lowest free handle, as firmware fills its table */
		while (handle_used(m, handle))
			handle++;
		*e = (struct sim_cert_hash){
		    .handle = handle, .is_active = true, .algorithm = 2, .hash_len = 32};
		memcpy(e->hash, h, 32);
		snprintf(e->name, sizeof(e->name), TRUSTED_NAME);
		m->p.hash_count++;
		free(m->trust_ca_pem);
		m->trust_ca_pem = pem;
		pem = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	free(pem);
	return r;
}
