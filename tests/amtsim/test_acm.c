/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The emulator's admin control mode, end to end in-process: the machine served on a Unix socket
 * (the agent's "unix:" device), AMTHI through mei's codec, WS-Man through provision's client over
 * APF (mutual TLS and the certificate pin included). The firmware's refusals are driven here
 * with requests the agent never sends: chains out of order or too long, an untrusted root, a
 * leaf for another domain or without AMT's provisioning usage, a signature by the wrong key or
 * over an old nonce, a McNonce used twice, a weak MEBx password, CommitChanges without one, a
 * TLS client without the certificate StartConfigurationHBased named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "../fixture.h"
#include "../helpers/profiles.h"
#include "amtsim.h"
#include "mei.h"
#include "password.h"
#include "wsman.h"

#ifndef AMTSIM_SCRIPTS_DIR
#error "AMTSIM_SCRIPTS_DIR must name tests/amtsim"
#endif

#define LSA_USER "$$OsAdmin"
#define LSA11    "OUCUJ9zt0ORhiUJSkwU3OipBir9AGaV9" /* amt11-pre's */
#define LSA19    "mpux5EZpaSij1rPomyuezFDdPbihDX1i" /* amt19-tls's */
#define ADMIN_PW "Adm1n!Pass.word"

static char dir[] = "/tmp/amtsim-acm-XXXXXX";
static unsigned unique; /* names of sockets and state files in DIR */

/* ---- material made by the scripts ---- */

struct pki {
	EVP_PKEY *leaf_key, *root_key;
	X509 *leaf, *inter, *root;
};

static X509 *pem_cert(const char *sub, const char *name)
{
	char path[512];
	FILE *f;
	X509 *x;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	f = fopen(path, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	assert_int_equal(fclose(f), 0);
	assert_non_null(x);
	return x;
}

static EVP_PKEY *pem_key(const char *sub, const char *name)
{
	char path[512];
	FILE *f;
	EVP_PKEY *k;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	f = fopen(path, "r");
	assert_non_null(f);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	assert_int_equal(fclose(f), 0);
	assert_non_null(k);
	return k;
}

static void pki_load(struct pki *p, const char *sub)
{
	p->leaf = pem_cert(sub, "prov-leaf.pem");
	p->inter = pem_cert(sub, "prov-int.pem");
	p->root = pem_cert(sub, "prov-root.pem");
	p->leaf_key = pem_key(sub, "prov-leaf.key");
	p->root_key = pem_key(sub, "prov-root.key");
}

static void pki_free(struct pki *p)
{
	X509_free(p->leaf);
	X509_free(p->inter);
	X509_free(p->root);
	EVP_PKEY_free(p->leaf_key);
	EVP_PKEY_free(p->root_key);
}

static void path_in(const char *sub, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s/%s", dir, sub, name);
}

/* ---- the machine and the host's side ---- */

struct host {
	struct amtsim *m;
	struct amtsim_unix_server *srv;
	char device[300];
	struct apf_session *apf;
};

/* PROFILE with FAULTS, trusting pki's root unless TRUST is NULL; TLS material on TLS machines. */
static void host_start(struct host *h, const char *profile, const char *trust,
                       const char *const *faults)
{
	char path[512], err[512] = "", sock[300];

	memset(h, 0, sizeof(*h));
	h->m = profile_load(profile, faults);
	if (trust) {
		path_in(trust, "prov-root.pem", path, sizeof(path));
		if (amtsim_trust_ca(h->m, path, err, sizeof(err)) < 0)
			fail_msg("%s", err);
	}
	if (amtsim_tls_enforced(h->m)) {
		char key[512];

		path_in("tls", "amt.pem", path, sizeof(path));
		path_in("tls", "amt.key", key, sizeof(key));
		if (amtsim_set_tls(h->m, path, key, err, sizeof(err)) < 0)
			fail_msg("%s", err);
	}
	snprintf(sock, sizeof(sock), "%s/mei-%u.sock", dir, ++unique);
	assert_int_equal(amtsim_unix_server_start(h->m, sock, NULL, &h->srv), 0);
	snprintf(h->device, sizeof(h->device), "unix:%s", sock);
}

static void host_stop(struct host *h)
{
	if (h->apf)
		apf_close(h->apf);
	amtsim_unix_server_stop(h->srv);
	amtsim_free(h->m);
}

static struct mei_opts opts(void)
{
	struct mei_opts o;

	mei_opts_default(&o);
	o.recv_ms = 5000;
	o.ready_ms = 2000;
	return o;
}

static struct mei_dev *amthi(struct host *h)
{
	struct mei_opts o = opts();
	struct mei_dev *d = NULL;

	assert_int_equal(mei_open(h->device, MEI_GUID_AMTHI, &o, &d), 0);
	return d;
}

static struct wsman_target target(struct host *h)
{
	struct mei_opts o = opts();

	if (!h->apf)
		assert_int_equal(apf_open(h->device, &o, &h->apf), 0);
	return (struct wsman_target){.route = WSMAN_VIA_APF,
	                             .apf = h->apf,
	                             .port = apf_wsman_port(h->apf),
	                             .tls = apf_tls_enforced(h->apf),
	                             .timeout_ms = 10000,
	                             .socket_dir = dir};
}

static struct wsman_client *client(const struct wsman_target *t, const char *user, const char *pass)
{
	struct wsman_client *c = NULL;
	struct wsman_error err;

	if (wsman_client_new(t, user, pass, &c, &err) != 0)
		fail_msg("%s", err.msg);
	return c;
}

/* METHOD's ReturnValue; -1 when the call failed (ERR says how). */
static long invoke(struct wsman_client *c, const char *uri, const char *method,
                   const struct wsman_param *p, size_t n, struct wsman_error *err)
{
	struct wsman_error own;
	xmlDocPtr doc = NULL;
	unsigned rv;
	int r = wsman_invoke(c, uri, method, p, n, &doc, err ? err : &own);

	if (r == 0)
		r = wsman_return_value(doc, &rv);
	xmlFreeDoc(doc);
	return r == 0 ? (long)rv : -1;
}

static void get_text(struct wsman_client *c, const char *uri, const char *field, char *out,
                     size_t cap)
{
	struct wsman_error err;
	xmlDocPtr doc = NULL;

	if (wsman_get(c, uri, &doc, &err) != 0)
		fail_msg("Get %s: %s", uri, err.msg);
	assert_int_equal(wsman_body_text(doc, field, out, cap), 0);
	xmlFreeDoc(doc);
}

static void expect_modes(struct amtsim *m, uint32_t mode, uint32_t state)
{
	struct amtsim_machine mc;

	amtsim_get_machine(m, &mc);
	assert_int_equal(mc.control_mode, mode);
	assert_int_equal(mc.provisioning_state, state);
}

/* ---- the host's pieces of admin control mode ---- */

static void b64(const uint8_t *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static size_t unb64(const char *in, uint8_t *out)
{
	size_t n = strlen(in), pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;

	return (size_t)EVP_DecodeBlock(out, (const unsigned char *)in, (int)n) - pad;
}

static long add_cert(struct wsman_client *c, X509 *x, bool leaf, bool root)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	char *text = malloc(4 * ((size_t)n + 2) / 3 + 4);
	long rv;

	assert_non_null(text);
	b64(der, (size_t)n, text);
	{
		const struct wsman_param p[] = {{"NextCertificate", text},
		                                {"IsLeafCertificate", leaf ? "true" : "false"},
		                                {"IsRootCertificate", root ? "true" : "false"}};

		rv = invoke(c, IPS_URI_HOST_BASED_SETUP, "AddNextCertInChain", p, 3, NULL);
	}
	free(text);
	OPENSSL_free(der);
	return rv;
}

static void add_chain(struct wsman_client *c, const struct pki *p)
{
	assert_int_equal(add_cert(c, p->leaf, true, false), 0);
	assert_int_equal(add_cert(c, p->inter, false, false), 0);
	assert_int_equal(add_cert(c, p->root, false, true), 0);
}

/* McNonce (base64) and KEY's signature over NONCE_B64's bytes and it. */
static void sign(EVP_PKEY *key, const char *nonce_b64, const uint8_t mc[20], char *mc_b64,
                 char *sig_b64)
{
	uint8_t msg[128], sig[512];
	size_t n = unb64(nonce_b64, msg), sig_len = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;

	memcpy(msg + n, mc, 20);
	assert_int_equal(EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &sig_len, msg, n + 20), 1);
	EVP_MD_CTX_free(md);
	b64(mc, 20, mc_b64);
	b64(sig, sig_len, sig_b64);
}

static long admin_setup(struct wsman_client *c, const char *realm, const char *mc_b64,
                        const char *sig_b64)
{
	char a1[33];
	const struct wsman_param p[] = {
	    {"NetAdminPassEncryptionType", "2"}, {"NetworkAdminPassword", a1},  {"McNonce", mc_b64},
	    {"SigningAlgorithm", "2"},           {"DigitalSignature", sig_b64},
	};

	assert_int_equal(password_digest_a1("admin", realm, ADMIN_PW, a1), 0);
	return invoke(c, IPS_URI_HOST_BASED_SETUP, "AdminSetup", p, 5, NULL);
}

static void nonce(struct wsman_client *c, char *out)
{
	get_text(c, IPS_URI_HOST_BASED_SETUP, "ConfigurationNonce", out, 64);
}

static long set_mebx(struct wsman_client *c, const char *pw)
{
	const struct wsman_param p[] = {{"Password", pw}};

	return invoke(c, AMT_URI_SETUP_AND_CONFIG, "SetMEBxPassword", p, 1, NULL);
}

/* ---- tests ---- */

static void test_admin_setup_signature_and_nonces(void **state)
{
	const char *const faults[] = {"dhcp-domain=example.test", NULL};
	struct host h;
	struct pki p;
	struct wsman_target t;
	struct wsman_client *c;
	uint8_t mc[20];
	char realm[128], n1[64], n2[64], mc_b64[32], sig[700];

	(void)state;
	pki_load(&p, "pki");
	host_start(&h, "amt11-pre", "pki", faults);
	t = target(&h);
	c = client(&t, LSA_USER, LSA11);
	get_text(c, AMT_URI_GENERAL_SETTINGS, "DigestRealm", realm, sizeof(realm));

	/* a chain starts with its leaf */
	assert_int_equal(add_cert(c, p.inter, false, false), 3);
	add_chain(c, &p);

	/* every Get gives a fresh nonce */
	nonce(c, n1);
	nonce(c, n2);
	assert_string_not_equal(n1, n2);

	/* a signature over the old nonce */
	RAND_bytes(mc, sizeof(mc));
	sign(p.leaf_key, n1, mc, mc_b64, sig);
	assert_int_equal(admin_setup(c, realm, mc_b64, sig), 5);
	/* the same McNonce again, with a good signature: refused too */
	nonce(c, n1);
	sign(p.leaf_key, n1, mc, mc_b64, sig);
	assert_int_equal(admin_setup(c, realm, mc_b64, sig), 5);
	/* a signature by another key */
	nonce(c, n1);
	RAND_bytes(mc, sizeof(mc));
	sign(p.root_key, n1, mc, mc_b64, sig);
	assert_int_equal(admin_setup(c, realm, mc_b64, sig), 5);
	/* a McNonce that is not 20 bytes, a signing algorithm other than RSA-SHA256 */
	assert_int_equal(admin_setup(c, realm, "AAAA", sig), 3);
	expect_modes(h.m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);

	nonce(c, n1);
	RAND_bytes(mc, sizeof(mc));
	sign(p.leaf_key, n1, mc, mc_b64, sig);
	assert_int_equal(admin_setup(c, realm, mc_b64, sig), 0);
	expect_modes(h.m, AMTHI_CONTROL_ACM, AMTHI_PROVISIONING_POST);
	/* once provisioned, the local system account is no more */
	{
		struct wsman_error err;
		xmlDocPtr doc = NULL;

		assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &doc, &err), WSMAN_E_AUTH);
	}
	wsman_client_free(c);

	/* admin in ACM: the MEBx password, by AMT's rules */
	c = client(&t, "admin", ADMIN_PW);
	assert_int_equal(set_mebx(c, "weakpassword"), 2054);
	assert_int_equal(set_mebx(c, "Mebx-Pass.42"), 0);
	{
		struct amtsim_machine mach;
		uint8_t md[32];
		char hex[65];
		unsigned int n;

		amtsim_get_machine(h.m, &mach);
		assert_int_equal(EVP_Digest("Mebx-Pass.42", 12, md, &n, EVP_sha256(), NULL), 1);
		for (size_t i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		assert_string_equal(mach.mebx_sha256, hex);
		assert_int_equal(mach.opt_in_required, 0xFFFFFFFFu);
	}
	wsman_client_free(c);
	host_stop(&h);
	pki_free(&p);
}

static void test_chain_refusals(void **state)
{
	const char *const good[] = {"dhcp-domain=example.test", NULL};
	const char *const other[] = {"dhcp-domain=other.test", NULL};
	const char *const pki_suffix[] = {"dns-suffix=example.test", "dhcp-domain=other.test",
	                                  NULL};
	struct host h;
	struct pki p, plain;
	struct wsman_target t;
	struct wsman_client *c;

	(void)state;
	pki_load(&p, "pki");
	pki_load(&plain, "plain");

	/* the root's hash is not among AMT's */
	host_start(&h, "amt11-pre", NULL, good);
	t = target(&h);
	c = client(&t, LSA_USER, LSA11);
	assert_int_equal(add_cert(c, p.leaf, true, false), 0);
	assert_int_equal(add_cert(c, p.inter, false, false), 0);
	assert_int_equal(add_cert(c, p.root, false, true), 4);
	wsman_client_free(c);
	host_stop(&h);

	/* the leaf's domain is not under AMT's DHCP domain */
	host_start(&h, "amt11-pre", "pki", other);
	t = target(&h);
	c = client(&t, LSA_USER, LSA11);
	assert_int_equal(add_cert(c, p.leaf, true, false), 0);
	assert_int_equal(add_cert(c, p.inter, false, false), 0);
	assert_int_equal(add_cert(c, p.root, false, true), 4);
	/* not base64 of a certificate */
	{
		const struct wsman_param bad[] = {{"NextCertificate", "bm90IGEgY2VydA=="},
		                                  {"IsLeafCertificate", "true"},
		                                  {"IsRootCertificate", "false"}};

		assert_int_equal(
		    invoke(c, IPS_URI_HOST_BASED_SETUP, "AddNextCertInChain", bad, 3, NULL), 1);
	}
	/* longer than AMT takes */
	assert_int_equal(add_cert(c, p.leaf, true, false), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(add_cert(c, p.inter, false, false), 0);
	assert_int_equal(add_cert(c, p.root, false, true), 5);
	wsman_client_free(c);
	host_stop(&h);

	/* the PKI DNS suffix decides over the DHCP domain */
	host_start(&h, "amt11-pre", "pki", pki_suffix);
	t = target(&h);
	c = client(&t, LSA_USER, LSA11);
	add_chain(c, &p);
	wsman_client_free(c);
	host_stop(&h);

	/* a leaf without AMT's provisioning usage, under a trusted root */
	host_start(&h, "amt11-pre", "plain", good);
	t = target(&h);
	c = client(&t, LSA_USER, LSA11);
	assert_int_equal(add_cert(c, plain.leaf, true, false), 0);
	assert_int_equal(add_cert(c, plain.inter, false, false), 0);
	assert_int_equal(add_cert(c, plain.root, false, true), 4);
	wsman_client_free(c);
	host_stop(&h);

	pki_free(&p);
	pki_free(&plain);
}

static void hbased_start(struct host *h, const struct pki *p, const char *suffix,
                         struct amthi_hbased_response *resp, int want)
{
	struct mei_dev *d = amthi(h);
	uint8_t hash[32];
	unsigned int n;
	const char *const suffixes[] = {suffix};

	assert_int_equal(X509_digest(p->leaf, EVP_sha256(), hash, &n), 1);
	assert_int_equal(amthi_start_configuration_hbased(d, AMTHI_HASH_SHA256, hash, 32, false,
	                                                  suffixes, suffix ? 1 : 0, resp),
	                 want);
	mei_close(d);
}

static void test_hbased_mutual_tls(void **state)
{
	struct host h;
	struct pki p, other;
	struct amthi_hbased_response resp;
	struct wsman_target t;
	struct wsman_client *c;
	struct wsman_error err;
	STACK_OF(X509) *chain = sk_X509_new_null(), *other_chain = sk_X509_new_null();
	struct wsman_tls_identity id, wrong;
	xmlDocPtr doc = NULL;
	X509 *amt;
	uint8_t amt_hash[32], digest[16];
	size_t digest_len = 0;
	unsigned int n;
	char realm[128], a1[33], digest_b64[32];

	(void)state;
	pki_load(&p, "pki");
	pki_load(&other, "pki2");
	sk_X509_push(chain, p.inter);
	sk_X509_push(chain, p.root);
	sk_X509_push(other_chain, other.inter);
	id = (struct wsman_tls_identity){p.leaf, p.leaf_key, chain};
	wrong = (struct wsman_tls_identity){other.leaf, other.leaf_key, other_chain};
	amt = pem_cert("tls", "amt.pem");
	X509_digest(amt, EVP_sha256(), amt_hash, &n);

	host_start(&h, "amt19-tls", "pki", NULL);
	hbased_start(&h, &p, "example.test", &resp, 0);
	/* AMT names its own TLS certificate, to pin */
	assert_int_equal(resp.hash_len, 32);
	assert_memory_equal(resp.hash, amt_hash, 32);
	expect_modes(h.m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_IN);
	/* once is enough */
	hbased_start(&h, &p, "example.test", &resp, AMTHI_STATUS_INVALID_AMT_MODE);

	t = target(&h);
	memcpy(t.pin, resp.hash, 32);
	t.pin_len = 32;

	/* no client certificate, or another one: AccessDenied */
	c = client(&t, LSA_USER, LSA19);
	assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &doc, &err), WSMAN_E_FAULT);
	assert_non_null(strstr(err.msg, "AccessDenied"));
	wsman_client_free(c);
	t.identity = &wrong;
	c = client(&t, LSA_USER, LSA19);
	assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &doc, &err), WSMAN_E_FAULT);
	wsman_client_free(c);

	/* a pin that is not AMT's certificate: the client refuses the handshake */
	t.identity = &id;
	t.pin[0] ^= 0xFF;
	c = client(&t, LSA_USER, LSA19);
	assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &doc, &err), WSMAN_E_TLS);
	wsman_client_free(c);
	t.pin[0] ^= 0xFF;

	/* the provisioning certificate, and AMT pinned */
	c = client(&t, LSA_USER, LSA19);
	get_text(c, AMT_URI_GENERAL_SETTINGS, "DigestRealm", realm, sizeof(realm));
	/* AdminSetup is not the way here */
	assert_int_equal(admin_setup(c, realm, "AAAA", "AAAA"), 2);
	/* CommitChanges wants the admin and the MEBx password first */
	assert_int_equal(password_digest_a1("admin", realm, ADMIN_PW, a1), 0);
	assert_int_equal(OPENSSL_hexstr2buf_ex(digest, sizeof(digest), &digest_len, a1, '\0'), 1);
	assert_int_equal(digest_len, sizeof(digest));
	b64(digest, 16, digest_b64);
	{
		const struct wsman_param acl[] = {{"Username", "admin"},
		                                  {"DigestPassword", digest_b64}};

		assert_int_equal(
		    invoke(c, AMT_URI_AUTHORIZATION, "SetAdminAclEntryEx", acl, 2, NULL), 0);
	}
	wsman_client_free(c);
	c = client(&t, "admin", ADMIN_PW);
	assert_int_equal(invoke(c, AMT_URI_SETUP_AND_CONFIG, "CommitChanges", NULL, 0, NULL), 2057);
	assert_int_equal(set_mebx(c, "short1A!"), 0);
	assert_int_equal(set_mebx(c, "NoDigits!"), 2054);
	expect_modes(h.m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_IN);
	assert_int_equal(invoke(c, AMT_URI_SETUP_AND_CONFIG, "CommitChanges", NULL, 0, NULL), 0);
	wsman_client_free(c);
	expect_modes(h.m, AMTHI_CONTROL_ACM, AMTHI_PROVISIONING_POST);
	host_stop(&h);

	X509_free(amt);
	sk_X509_free(chain);
	sk_X509_free(other_chain);
	pki_free(&p);
	pki_free(&other);
}

static void test_start_and_stop_configuration(void **state)
{
	struct host h;
	struct pki p;
	struct amthi_hbased_response resp;
	struct mei_dev *d;
	char path[512];

	(void)state;
	pki_load(&p, "pki");
	/* firmware without TLS locally: AdminSetup's way, not this one */
	host_start(&h, "amt11-pre", "pki", NULL);
	hbased_start(&h, &p, NULL, &resp, AMTHI_STATUS_NOT_PERMITTED);
	d = amthi(&h);
	assert_int_equal(amthi_stop_configuration(d), AMTHI_STATUS_INVALID_AMT_MODE);
	mei_close(d);
	host_stop(&h);

	/* StopConfiguration takes AMT back from "in"; what was set meanwhile is forgotten */
	host_start(&h, "amt19-tls", "pki", NULL);
	snprintf(path, sizeof(path), "%s/state-%u.json", dir, ++unique);
	{
		char err[256];

		assert_int_equal(amtsim_set_state_file(h.m, path, err, sizeof(err)), 0);
	}
	hbased_start(&h, &p, NULL, &resp, 0);
	d = amthi(&h);
	assert_int_equal(amthi_stop_configuration(d), 0);
	mei_close(d);
	expect_modes(h.m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_PRE);
	{
		json_object *o = json_object_from_file(path), *v;

		assert_non_null(o);
		assert_true(json_object_object_get_ex(o, "provisioning_state", &v));
		assert_string_equal(json_object_get_string(v), "pre");
		json_object_put(o);
	}
	unlink(path);
	host_stop(&h);

	/* client control mode: not from there */
	host_start(&h, "amt16-ccm", "pki", NULL);
	hbased_start(&h, &p, NULL, &resp, AMTHI_STATUS_INVALID_AMT_MODE);
	host_stop(&h);
	pki_free(&p);
}

static void test_upgrade_and_user_consent(void **state)
{
	const char *const faults[] = {"dhcp-domain=example.test", NULL};
	const struct wsman_param none[] = {{"OptInRequired", "0"}};
	struct host h;
	struct pki p;
	struct wsman_target t;
	struct wsman_client *c;
	struct wsman_error err;
	xmlDocPtr doc = NULL;
	uint8_t mc[20];
	char realm[128], a1[33], n1[64], mc_b64[32], sig[700], text[32];

	(void)state;
	pki_load(&p, "pki");
	host_start(&h, "amt11-pre", "pki", faults);
	t = target(&h);
	/* client control mode first */
	c = client(&t, LSA_USER, LSA11);
	get_text(c, AMT_URI_GENERAL_SETTINGS, "DigestRealm", realm, sizeof(realm));
	assert_int_equal(password_digest_a1("admin", realm, ADMIN_PW, a1), 0);
	{
		const struct wsman_param setup[] = {{"NetAdminPassEncryptionType", "2"},
		                                    {"NetworkAdminPassword", a1}};

		assert_int_equal(invoke(c, IPS_URI_HOST_BASED_SETUP, "Setup", setup, 2, NULL), 0);
	}
	wsman_client_free(c);
	c = client(&t, "admin", ADMIN_PW);

	/* user consent cannot be switched off in client control mode; nor a MEBx password set */
	get_text(c, IPS_URI_OPT_IN, "CanModifyOptInPolicy", text, sizeof(text));
	assert_string_equal(text, "0");
	assert_int_equal(wsman_put(c, IPS_URI_OPT_IN, "IPS_OptInService", none, 1, &doc, &err),
	                 WSMAN_E_FAULT);
	assert_non_null(strstr(err.msg, "AccessDenied"));
	assert_int_equal(set_mebx(c, "Mebx-Pass.42"), 16);

	/* the upgrade, with the chain and a signed nonce, as admin */
	add_chain(c, &p);
	nonce(c, n1);
	RAND_bytes(mc, sizeof(mc));
	sign(p.leaf_key, n1, mc, mc_b64, sig);
	{
		const struct wsman_param up[] = {
		    {"McNonce", mc_b64}, {"SigningAlgorithm", "2"}, {"DigitalSignature", sig}};

		assert_int_equal(
		    invoke(c, IPS_URI_HOST_BASED_SETUP, "UpgradeClientToAdmin", up, 3, NULL), 0);
	}
	expect_modes(h.m, AMTHI_CONTROL_ACM, AMTHI_PROVISIONING_POST);

	/* now it can */
	get_text(c, IPS_URI_OPT_IN, "OptInRequired", text, sizeof(text));
	assert_string_equal(text, "4294967295");
	assert_int_equal(wsman_put(c, IPS_URI_OPT_IN, "IPS_OptInService", none, 1, &doc, &err), 0);
	assert_int_equal(wsman_body_text(doc, "OptInRequired", text, sizeof(text)), 0);
	assert_string_equal(text, "0");
	xmlFreeDoc(doc);
	{
		struct amtsim_machine mach;

		amtsim_get_machine(h.m, &mach);
		assert_int_equal(mach.opt_in_required, 0);
	}
	/* admin control mode is undone by the admin over WS-Man only */
	{
		const struct wsman_param mode[] = {{"ProvisioningMode", "1"}};

		assert_int_equal(invoke(c, AMT_URI_SETUP_AND_CONFIG, "Unprovision", mode, 1, NULL),
		                 0);
	}
	expect_modes(h.m, AMTHI_CONTROL_NONE, AMTHI_PROVISIONING_IN);
	wsman_client_free(c);
	host_stop(&h);
	pki_free(&p);
}

static void test_trust_ca_refusals(void **state)
{
	char path[512], err[512] = "";
	struct amtsim *m;

	(void)state;
	profile_path("amt11-pre", path, sizeof(path));
	m = amtsim_new(path, err, sizeof(err));
	assert_non_null(m);
	assert_int_equal(amtsim_trust_ca(m, "/nonexistent.pem", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent.pem"));
	/* a certificate that is not self-signed is no root */
	path_in("pki", "prov-leaf.pem", path, sizeof(path));
	assert_int_equal(amtsim_trust_ca(m, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "self-signed"));
	amtsim_free(m);
}

static int make_material(void **state)
{
	static const char *const scripts[][3] = {
	    {"make-test-certs.sh", "", "tls"},
	    {"make-provisioning-cert.sh", "", "pki"},
	    {"make-provisioning-cert.sh", "", "pki2"},
	    {"make-provisioning-cert.sh", "--plain-leaf", "plain"},
	};
	char script[512], out[512];

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
		const char *argv[5];
		size_t n = 0;

		snprintf(script, sizeof(script), "%s/%s", AMTSIM_SCRIPTS_DIR, scripts[i][0]);
		snprintf(out, sizeof(out), "%s/%s", dir, scripts[i][2]);
		argv[n++] = "sh";
		argv[n++] = script;
		if (scripts[i][1][0])
			argv[n++] = scripts[i][1];
		argv[n++] = out;
		argv[n] = NULL;
		if (fixture_run(argv) != 0)
			return -1;
	}
	return 0;
}

static int remove_material(void **state)
{
	(void)state;
	return fixture_remove_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_admin_setup_signature_and_nonces),
	    cmocka_unit_test(test_chain_refusals),
	    cmocka_unit_test(test_hbased_mutual_tls),
	    cmocka_unit_test(test_start_and_stop_configuration),
	    cmocka_unit_test(test_upgrade_and_user_consent),
	    cmocka_unit_test(test_trust_ca_refusals),
	};

	return cmocka_run_group_tests(tests, make_material, remove_material);
}
