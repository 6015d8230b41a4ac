/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provisioning certificate before anything is sent: loading the PKCS#12 file (its password
 * from a file or the environment's value, never in a message), ordering the chain, refusing what
 * AMT would refuse; then the checks against AMT's state (the root among the active hashes, the
 * leaf's domain under AMT's DNS suffix). Test PKIs come from
 * tests/amtsim/make-provisioning-cert.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "../tests/fixture.h"
#include "acm.h"

#ifndef PROVISIONING_CERT_SCRIPT
#error "PROVISIONING_CERT_SCRIPT must name tests/amtsim/make-provisioning-cert.sh"
#endif

static char dir[] = "/tmp/amt-enlist-acmcert-XXXXXX";

static void path(const char *sub, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s/%s", dir, sub, name);
}

static char *password_of(const char *sub)
{
	static char pw[128];
	char p[512];
	FILE *f;

	path(sub, "prov-pass.txt", p, sizeof(p));
	f = fopen(p, "r");
	assert_non_null(f);
	assert_non_null(fgets(pw, sizeof(pw), f));
	assert_int_equal(fclose(f), 0);
	pw[strcspn(pw, "\n")] = '\0';
	return pw;
}

/* Options for SUB's PKCS#12 file with its password file. */
static void opts_for(const char *sub, struct prov_activate_opts *o, char *pfx, char *pass,
                     size_t cap)
{
	prov_activate_opts_default(o);
	path(sub, "prov.pfx", pfx, cap);
	path(sub, "prov-pass.txt", pass, cap);
	o->acm = true;
	o->provisioning_cert = pfx;
	o->provisioning_cert_password_file = pass;
}

static void root_digest(const char *sub, const EVP_MD *md, uint8_t *out)
{
	char p[512];
	FILE *f;
	X509 *x;
	unsigned int n;

	path(sub, "prov-root.pem", p, sizeof(p));
	f = fopen(p, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	assert_int_equal(fclose(f), 0);
	assert_non_null(x);
	assert_int_equal(X509_digest(x, md, out, &n), 1);
	X509_free(x);
}

static void test_load_good(void **state)
{
	struct prov_activate_opts o;
	struct prov_error err = {0};
	struct acm_cert *c = NULL;
	char pfx[512], pass[512];

	(void)state;
	opts_for("pki", &o, pfx, pass, sizeof(pfx));
	assert_int_equal(acm_cert_load(&o, &c, &err), 0);
	assert_non_null(c);
	acm_cert_free(c);

	/* the password itself (from the environment) instead of a file */
	o.provisioning_cert_password_file = NULL;
	o.provisioning_cert_password = password_of("pki");
	assert_int_equal(acm_cert_load(&o, &c, &err), 0);
	acm_cert_free(c);

	/* without an intermediate */
	opts_for("direct", &o, pfx, pass, sizeof(pfx));
	assert_int_equal(acm_cert_load(&o, &c, &err), 0);
	acm_cert_free(c);
}

static void expect_refusal(const struct prov_activate_opts *o, const char *words,
                           const char *secret)
{
	struct prov_error err = {0};
	struct acm_cert *c = (struct acm_cert *)1;

	assert_int_equal(acm_cert_load(o, &c, &err), PROV_E_BAD_INPUT);
	assert_null(c);
	if (!strstr(err.msg, words))
		fail_msg("\"%s\" does not say \"%s\"", err.msg, words);
	if (secret)
		assert_null(strstr(err.msg, secret));
}

static void test_load_refusals(void **state)
{
	struct prov_activate_opts o;
	char pfx[512], pass[512], wrong[512];
	FILE *f;

	(void)state;
	opts_for("pki", &o, pfx, pass, sizeof(pfx));
	path("pki", "wrong-pass.txt", wrong, sizeof(wrong));
	f = fopen(wrong, "w");
	assert_non_null(f);
	assert_int_not_equal(fputs("Not-The-Pass-9\n", f), EOF);
	assert_int_equal(fclose(f), 0);
	o.provisioning_cert_password_file = wrong;
	expect_refusal(&o, "wrong password", "Not-The-Pass-9");
	/* no password at all */
	o.provisioning_cert_password_file = NULL;
	expect_refusal(&o, "wrong password", NULL);
	o.provisioning_cert_password = "Not-The-Pass-9";
	expect_refusal(&o, "wrong password", "Not-The-Pass-9");

	/* not a PKCS#12 file, no file */
	opts_for("pki", &o, pfx, pass, sizeof(pfx));
	path("pki", "prov-leaf.pem", pfx, sizeof(pfx));
	expect_refusal(&o, "is not a PKCS#12", NULL);
	path("pki", "missing.pfx", pfx, sizeof(pfx));
	expect_refusal(&o, "cannot read provisioning certificate", NULL);
	o.provisioning_cert = NULL;
	expect_refusal(&o, "--provisioning-cert", NULL);

	/* a leaf AMT does not take for provisioning */
	opts_for("plain", &o, pfx, pass, sizeof(pfx));
	expect_refusal(&o, "not an AMT provisioning certificate", NULL);

	/* the chain is not in the file */
	opts_for("nochain", &o, pfx, pass, sizeof(pfx));
	expect_refusal(&o, "the chain stops at", NULL);

	/* an EC key: AMT's signature is RSA */
	opts_for("ec", &o, pfx, pass, sizeof(pfx));
	expect_refusal(&o, "not RSA", NULL);
}

static struct amt_state *state_with(const uint8_t *hash, size_t len, uint8_t alg, bool active)
{
	struct amt_state *st = calloc(1, sizeof(*st));

	assert_non_null(st);
	st->hash_count = 2;
	snprintf(st->hashes[0].name, sizeof(st->hashes[0].name), "Other CA");
	st->hashes[0].hash_len = 32;
	st->hashes[0].is_active = true;
	memset(st->hashes[0].hash, 0xAB, 32);
	snprintf(st->hashes[1].name, sizeof(st->hashes[1].name), "Test CA");
	st->hashes[1].algorithm = alg;
	st->hashes[1].hash_len = len;
	st->hashes[1].is_active = active;
	memcpy(st->hashes[1].hash, hash, len);
	return st;
}

static void test_check_root_and_domain(void **state)
{
	struct prov_activate_opts o;
	struct prov_error err = {0};
	struct acm_cert *c = NULL;
	struct amt_state *st;
	uint8_t h256[32], h384[48];
	char pfx[512], pass[512];
	bool unchecked = false;

	(void)state;
	opts_for("pki", &o, pfx, pass, sizeof(pfx));
	assert_int_equal(acm_cert_load(&o, &c, &err), 0);
	root_digest("pki", EVP_sha256(), h256);
	root_digest("pki", EVP_sha384(), h384);

	/* active SHA-256 or SHA-384: trusted; no suffix known anywhere: AMT judges the domain */
	st = state_with(h256, 32, AMTHI_HASH_SHA256, true);
	assert_int_equal(acm_check(c, st, NULL, &unchecked, &err), 0);
	assert_true(unchecked);
	free(st);
	st = state_with(h384, 48, AMTHI_HASH_SHA384_OR_SHA512, true);
	assert_int_equal(acm_check(c, st, "example.test", &unchecked, &err), 0);
	assert_false(unchecked);

	/* the PKI DNS suffix wins over the operator's, label by label, case aside */
	snprintf(st->dns_suffix, sizeof(st->dns_suffix), "EXAMPLE.test.");
	assert_int_equal(acm_check(c, st, "other.test", &unchecked, &err), 0);
	snprintf(st->dns_suffix, sizeof(st->dns_suffix), "ample.test");
	assert_int_equal(acm_check(c, st, "example.test", &unchecked, &err), PROV_E_REFUSED);
	assert_non_null(strstr(err.msg, "\"ample.test\" (its PKI DNS suffix)"));
	assert_non_null(strstr(err.msg, "AMT is left untouched"));
	st->dns_suffix[0] = '\0';
	assert_int_equal(acm_check(c, st, "corp.example", &unchecked, &err), PROV_E_REFUSED);
	assert_non_null(strstr(err.msg, "(--dns-suffix)"));
	/* the leaf's own name is a suffix of itself */
	assert_int_equal(acm_check(c, st, "amt.example.test", &unchecked, &err), 0);
	free(st);

	/* present but not active, or absent */
	st = state_with(h256, 32, AMTHI_HASH_SHA256, false);
	assert_int_equal(acm_check(c, st, NULL, &unchecked, &err), PROV_E_UNTRUSTED_ROOT);
	assert_non_null(strstr(err.msg, "not active"));
	free(st);
	h256[0] ^= 1;
	st = state_with(h256, 32, AMTHI_HASH_SHA256, true);
	assert_int_equal(acm_check(c, st, NULL, &unchecked, &err), PROV_E_UNTRUSTED_ROOT);
	assert_non_null(strstr(err.msg, "\"amt-enlist test provisioning root\""));
	assert_non_null(strstr(err.msg, "not among AMT's 2 certificate hashes"));
	free(st);
	acm_cert_free(c);
}

static int make_material(void **state)
{
	/* the script and the directory are the shell's $1 and $2, never part of its code */
	static const char script[] =
	    "set -e; s=\"$1\"; d=\"$2\"; sh \"$s\" \"$d/pki\"; sh \"$s\" --no-intermediate "
	    "\"$d/direct\"; sh \"$s\" --plain-leaf \"$d/plain\"; sh \"$s\" \"$d/nochain\"; "
	    "openssl pkcs12 -export -inkey \"$d/nochain/prov-leaf.key\" -in "
	    "\"$d/nochain/prov-leaf.pem\" -passout \"file:$d/nochain/prov-pass.txt\" "
	    "-out \"$d/nochain/prov.pfx\"; mkdir -m 700 \"$d/ec\"; "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	    "-days 1 -subj '/OU=Intel(R) Client Setup Certificate/CN=amt.example.test' "
	    "-addext extendedKeyUsage=serverAuth,2.16.840.1.113741.1.2.3 "
	    "-keyout \"$d/ec/k.pem\" -out \"$d/ec/c.pem\" 2>/dev/null; echo pw > "
	    "\"$d/ec/prov-pass.txt\"; openssl pkcs12 -export -inkey \"$d/ec/k.pem\" -in "
	    "\"$d/ec/c.pem\" -passout \"file:$d/ec/prov-pass.txt\" -out \"$d/ec/prov.pfx\"";
	const char *const argv[] = {"sh", "-c", script, "sh", PROVISIONING_CERT_SCRIPT, dir, NULL};

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	return fixture_run(argv);
}

static int remove_material(void **state)
{
	(void)state;
	return fixture_remove_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_good),
	    cmocka_unit_test(test_load_refusals),
	    cmocka_unit_test(test_check_root_and_domain),
	};

	return cmocka_run_group_tests(tests, make_material, remove_material);
}
