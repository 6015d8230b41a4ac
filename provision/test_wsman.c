/* SPDX-License-Identifier: Apache-2.0 */
/*
 * WS-Man: envelopes, reply parsing (the fixtures in $WSMAN_FIXTURES and hostile documents), the
 * LMS listener check against fake and real /proc, and HTTP with Digest end to end against an
 * in-process libmicrohttpd server: on 127.0.0.1 (the LMS route), and behind port 16992 of the
 * emulator's APF firmware side (the APF route, through mei's real bridge). No test prints a
 * password.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "../tests/helpers/fake_amt.h"
#include "../tests/helpers/httpd.h"
#include "amtsim.h"
#include "apf_fw.h"
#include "password.h"
#include "wsman.h"

#define ANONYMOUS "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

/* ---- helpers ---- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		print_error("cannot open %s: %s\n", path, strerror(errno));
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	assert_int_equal(fclose(f), 0);
	*len = (size_t)n;
	return buf;
}

static const char *fixture_dir(void)
{
	const char *dir = getenv("WSMAN_FIXTURES");

	if (!dir || !*dir)
		fail_msg("WSMAN_FIXTURES is not set (meson test sets it)");
	return dir;
}

static char *fixture(const char *name, size_t *len)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", fixture_dir(), name);
	return read_file(path, len);
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* ---- envelopes ---- */

struct built {
	xmlChar *text;
	int len;
	xmlDocPtr doc; /* TEXT parsed back */
	xmlXPathContextPtr xp;
};

/* Serialise DOC as the client would send it and parse it back, as a receiver would. */
static void build_and_reparse(xmlDocPtr doc, struct built *b)
{
	assert_non_null(doc);
	xmlDocDumpMemoryEnc(doc, &b->text, &b->len, "UTF-8");
	xmlFreeDoc(doc);
	assert_non_null(b->text);
	b->doc = xmlReadMemory((const char *)b->text, b->len, NULL, NULL, XML_PARSE_NONET);
	assert_non_null(b->doc);
	b->xp = xmlXPathNewContext(b->doc);
	assert_non_null(b->xp);
	xmlXPathRegisterNs(b->xp, BAD_CAST "s", BAD_CAST WSMAN_NS_SOAP);
	xmlXPathRegisterNs(b->xp, BAD_CAST "a", BAD_CAST WSMAN_NS_ADDR);
	xmlXPathRegisterNs(b->xp, BAD_CAST "w", BAD_CAST WSMAN_NS_WSMAN);
	xmlXPathRegisterNs(b->xp, BAD_CAST "h", BAD_CAST IPS_URI_HOST_BASED_SETUP);
}

static void built_free(struct built *b)
{
	xmlXPathFreeContext(b->xp);
	xmlFreeDoc(b->doc);
	xmlFree(b->text);
}

static int count(struct built *b, const char *xpath)
{
	xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST xpath, b->xp);
	int n;

	assert_non_null(o);
	n = o->nodesetval ? o->nodesetval->nodeNr : 0;
	xmlXPathFreeObject(o);
	return n;
}

/* The string value of the single node XPATH selects. */
static void assert_xpath(struct built *b, const char *xpath, const char *want)
{
	xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST xpath, b->xp);
	xmlChar *got;

	assert_non_null(o);
	assert_non_null(o->nodesetval);
	if (o->nodesetval->nodeNr != 1)
		fail_msg("%s selects %d nodes", xpath, o->nodesetval->nodeNr);
	assert_int_equal(o->nodesetval->nodeNr, 1); /* fail_msg is not marked noreturn */
	got = xmlNodeGetContent(o->nodesetval->nodeTab[0]);
	assert_string_equal((const char *)got, want);
	xmlFree(got);
	xmlXPathFreeObject(o);
}

static void assert_common_header(struct built *b, const char *action, const char *uri,
				 const char *message_id)
{
	assert_xpath(b, "/s:Envelope/s:Header/a:Action", action);
	assert_xpath(b, "/s:Envelope/s:Header/a:Action/@s:mustUnderstand", "true");
	assert_xpath(b, "/s:Envelope/s:Header/a:To", "/wsman");
	assert_xpath(b, "/s:Envelope/s:Header/w:ResourceURI", uri);
	assert_xpath(b, "/s:Envelope/s:Header/w:ResourceURI/@s:mustUnderstand", "true");
	assert_xpath(b, "/s:Envelope/s:Header/a:MessageID", message_id);
	assert_xpath(b, "/s:Envelope/s:Header/a:ReplyTo/a:Address", ANONYMOUS);
	assert_xpath(b, "/s:Envelope/s:Header/w:OperationTimeout", "PT60S");
	assert_int_equal(count(b, "/s:Envelope/s:Body"), 1);
}

static void test_envelope_get(void **state)
{
	struct built b = {0};

	(void)state;
	build_and_reparse(wsman_envelope_get(AMT_URI_GENERAL_SETTINGS, 7), &b);
	assert_common_header(&b, WSMAN_ACTION_GET, AMT_URI_GENERAL_SETTINGS, "7");
	assert_int_equal(count(&b, "/s:Envelope/s:Body/*"), 0);
	built_free(&b);
}

static void test_envelope_get_instance(void **state)
{
	const struct wsman_param sel = {"InstanceID", "Intel(r) AMT 802.3 TLS Settings"};
	struct built b = {0};

	(void)state;
	build_and_reparse(wsman_envelope_get_instance(AMT_URI_TLS_SETTING_DATA, &sel, 9), &b);
	assert_common_header(&b, WSMAN_ACTION_GET, AMT_URI_TLS_SETTING_DATA, "9");
	assert_xpath(&b, "/s:Envelope/s:Header/w:SelectorSet/w:Selector/@Name", "InstanceID");
	assert_xpath(&b, "/s:Envelope/s:Header/w:SelectorSet/w:Selector",
		     "Intel(r) AMT 802.3 TLS Settings");
	built_free(&b);
	assert_null(wsman_envelope_get_instance(AMT_URI_TLS_SETTING_DATA,
						&(struct wsman_param){"InstanceID", NULL}, 1));
}

static void test_envelope_invoke(void **state)
{
	const struct wsman_param params[] = {
		{"NetAdminPassEncryptionType", "2"},
		{"NetworkAdminPassword", "f73b2c17b1ecbd7a235ec37d66cbed71"},
		{"McNonce", "<&>\"' ]]>"},
	};
	struct built b = {0};

	(void)state;
	build_and_reparse(wsman_envelope_invoke(IPS_URI_HOST_BASED_SETUP, "Setup", params, 3, 42),
			  &b);
	assert_common_header(&b, IPS_URI_HOST_BASED_SETUP "/Setup", IPS_URI_HOST_BASED_SETUP,
			     "42");
	/* The body element is Setup_INPUT in the resource's namespace, whatever its prefix. */
	assert_int_equal(count(&b, "/s:Envelope/s:Body/*"), 1);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/h:Setup_INPUT"), 1);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/h:Setup_INPUT/*"), 3);
	assert_xpath(&b, "/s:Envelope/s:Body/h:Setup_INPUT/h:NetAdminPassEncryptionType", "2");
	assert_xpath(&b, "/s:Envelope/s:Body/h:Setup_INPUT/h:NetworkAdminPassword",
		     "f73b2c17b1ecbd7a235ec37d66cbed71");
	assert_xpath(&b, "/s:Envelope/s:Body/h:Setup_INPUT/h:McNonce", "<&>\"' ]]>");
	assert_non_null(strstr((const char *)b.text, "&lt;&amp;&gt;"));
	assert_null(strstr((const char *)b.text, "<&>"));
	assert_non_null(strstr((const char *)b.text, "<h:Setup_INPUT xmlns:h=\"" IPS_URI_HOST_BASED_SETUP
						     "\">"));
	built_free(&b);
}

static void test_envelope_invoke_instance(void **state)
{
	const struct wsman_param sel = {"InstanceID", "Intel(r) AMT Power Scheme 1"};
	struct built b = {0};

	(void)state;
	build_and_reparse(wsman_envelope_invoke_instance(AMT_URI_POWER_SCHEME, &sel,
							 "SetPowerScheme", NULL, 0, 12),
			  &b);
	assert_common_header(&b, AMT_URI_POWER_SCHEME "/SetPowerScheme", AMT_URI_POWER_SCHEME,
			     "12");
	assert_xpath(&b, "/s:Envelope/s:Header/w:SelectorSet/w:Selector/@Name", "InstanceID");
	assert_xpath(&b, "/s:Envelope/s:Header/w:SelectorSet/w:Selector",
		     "Intel(r) AMT Power Scheme 1");
	xmlXPathRegisterNs(b.xp, BAD_CAST "p", BAD_CAST AMT_URI_POWER_SCHEME);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/p:SetPowerScheme_INPUT"), 1);
	built_free(&b);
	/* without a selector it is the plain invoke: no SelectorSet */
	build_and_reparse(wsman_envelope_invoke_instance(AMT_URI_POWER_SCHEME, NULL,
							 "SetPowerScheme", NULL, 0, 13),
			  &b);
	assert_int_equal(count(&b, "/s:Envelope/s:Header/w:SelectorSet"), 0);
	built_free(&b);
	assert_null(wsman_envelope_invoke_instance(AMT_URI_POWER_SCHEME,
						   &(struct wsman_param){NULL, "x"},
						   "SetPowerScheme", NULL, 0, 1));
}

static void test_envelope_enumerate_pull(void **state)
{
	struct built b = {0};

	(void)state;
	build_and_reparse(wsman_envelope_enumerate(AMT_URI_POWER_SCHEME, 5), &b);
	assert_common_header(&b, WSMAN_ACTION_ENUMERATE, AMT_URI_POWER_SCHEME, "5");
	xmlXPathRegisterNs(b.xp, BAD_CAST "n", BAD_CAST WSMAN_NS_ENUM);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/*"), 1);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/n:Enumerate"), 1);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/n:Enumerate/*"), 0);
	built_free(&b);

	build_and_reparse(wsman_envelope_pull(AMT_URI_POWER_SCHEME, "<ctx&1>", 32, 6), &b);
	assert_common_header(&b, WSMAN_ACTION_PULL, AMT_URI_POWER_SCHEME, "6");
	xmlXPathRegisterNs(b.xp, BAD_CAST "n", BAD_CAST WSMAN_NS_ENUM);
	assert_xpath(&b, "/s:Envelope/s:Body/n:Pull/n:EnumerationContext", "<ctx&1>");
	assert_xpath(&b, "/s:Envelope/s:Body/n:Pull/n:MaxElements", "32");
	built_free(&b);

	assert_null(wsman_envelope_pull(AMT_URI_POWER_SCHEME, "", 32, 1));
	assert_null(wsman_envelope_pull(AMT_URI_POWER_SCHEME, NULL, 32, 1));
	assert_null(wsman_envelope_pull(AMT_URI_POWER_SCHEME, "c", 0, 1));
	assert_null(wsman_envelope_enumerate(NULL, 1));
}

static void test_envelope_no_params(void **state)
{
	struct built b = {0};

	(void)state;
	build_and_reparse(
		wsman_envelope_invoke(AMT_URI_SETUP_AND_CONFIG, "CommitChanges", NULL, 0, 3), &b);
	assert_common_header(&b, AMT_URI_SETUP_AND_CONFIG "/CommitChanges",
			     AMT_URI_SETUP_AND_CONFIG, "3");
	xmlXPathRegisterNs(b.xp, BAD_CAST "g", BAD_CAST AMT_URI_SETUP_AND_CONFIG);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/g:CommitChanges_INPUT"), 1);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/g:CommitChanges_INPUT/*"), 0);
	built_free(&b);
}

/* WS-Transfer Put of a singleton: the instance itself in the Body, in the resource's namespace. */
static void test_envelope_put(void **state)
{
	const struct wsman_param params[] = {
		{"CanModifyOptInPolicy", "1"},
		{"OptInRequired", "0"},
		{"ElementName", "Intel(r) AMT OptIn Service"},
	};
	struct built b = {0};

	(void)state;
	build_and_reparse(wsman_envelope_put(IPS_URI_OPT_IN, "IPS_OptInService", params, 3, 5), &b);
	assert_common_header(&b, WSMAN_ACTION_PUT, IPS_URI_OPT_IN, "5");
	xmlXPathRegisterNs(b.xp, BAD_CAST "o", BAD_CAST IPS_URI_OPT_IN);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/*"), 1);
	assert_int_equal(count(&b, "/s:Envelope/s:Body/o:IPS_OptInService/*"), 3);
	assert_xpath(&b, "/s:Envelope/s:Body/o:IPS_OptInService/o:OptInRequired", "0");
	assert_xpath(&b, "/s:Envelope/s:Body/o:IPS_OptInService/o:ElementName",
		     "Intel(r) AMT OptIn Service");
	built_free(&b);
	assert_null(wsman_envelope_put(IPS_URI_OPT_IN, "IPS OptInService", params, 3, 1));
	assert_null(wsman_envelope_put(IPS_URI_OPT_IN, "IPS_OptInService", NULL, 1, 1));
	assert_null(wsman_envelope_put(NULL, "IPS_OptInService", params, 3, 1));
}

static void test_envelope_rejects_bad_names(void **state)
{
	const struct wsman_param bad_name[] = {{"Net Admin", "1"}};
	const struct wsman_param markup_name[] = {{"a<b", "1"}};
	const struct wsman_param no_value[] = {{"Name", NULL}};

	(void)state;
	assert_null(wsman_envelope_invoke(IPS_URI_HOST_BASED_SETUP, "Set up", NULL, 0, 1));
	assert_null(wsman_envelope_invoke(IPS_URI_HOST_BASED_SETUP, "", NULL, 0, 1));
	assert_null(wsman_envelope_invoke(IPS_URI_HOST_BASED_SETUP, "a<b", NULL, 0, 1));
	assert_null(wsman_envelope_invoke(IPS_URI_HOST_BASED_SETUP, NULL, NULL, 0, 1));
	assert_null(wsman_envelope_invoke(IPS_URI_HOST_BASED_SETUP, "Setup", bad_name, 1, 1));
	assert_null(wsman_envelope_invoke(IPS_URI_HOST_BASED_SETUP, "Setup", markup_name, 1, 1));
	assert_null(wsman_envelope_invoke(IPS_URI_HOST_BASED_SETUP, "Setup", no_value, 1, 1));
	assert_null(wsman_envelope_invoke(IPS_URI_HOST_BASED_SETUP, "Setup", NULL, 1, 1));
	assert_null(wsman_envelope_get(NULL, 1));
}

/* ---- replies ---- */

static void test_fixtures_parse(void **state)
{
	DIR *dir = opendir(fixture_dir());
	struct dirent *de;
	int replies = 0, faults = 0;

	(void)state;
	assert_non_null(dir);
	while ((de = readdir(dir))) {
		size_t n = strlen(de->d_name), len;
		struct wsman_error err = {0};
		xmlDocPtr doc = NULL;
		char *body;
		unsigned rv;
		int r;

		if (n < 4 || strcmp(de->d_name + n - 4, ".xml") != 0)
			continue;
		body = fixture(de->d_name, &len);
		r = wsman_parse_reply(body, len, &doc, &err);
		if (strncmp(de->d_name, "fault_", 6) == 0) {
			if (r != WSMAN_E_FAULT)
				fail_msg("%s: %d, not a fault", de->d_name, r);
			assert_null(doc);
			faults++;
		} else {
			if (r != 0)
				fail_msg("%s: %d %s", de->d_name, r, err.msg);
			assert_non_null(doc);
			if (strstr(body, "ReturnValue>")) {
				rv = 99;
				assert_int_equal(wsman_return_value(doc, &rv), 0);
				assert_int_equal(rv, 0);
			} else {
				assert_int_equal(wsman_return_value(doc, &rv), WSMAN_E_PARSE);
			}
			replies++;
		}
		xmlFreeDoc(doc);
		free(body);
	}
	closedir(dir);
	assert_int_equal(faults, 1);
	assert_true(replies >= 11);
}

static xmlDocPtr parse_fixture(const char *name)
{
	struct wsman_error err = {0};
	xmlDocPtr doc = NULL;
	size_t len;
	char *body = fixture(name, &len);

	if (wsman_parse_reply(body, len, &doc, &err) != 0)
		fail_msg("%s: %s", name, err.msg);
	free(body);
	return doc;
}

static void test_general_settings_realm(void **state)
{
	xmlDocPtr doc = parse_fixture("amt_general_get.xml");
	char text[128];

	(void)state;
	assert_int_equal(wsman_body_text(doc, "DigestRealm", text, sizeof(text)), 0);
	assert_string_equal(text, "Digest:F3EB554784E729164447A89F60B641C5");
	assert_int_equal(wsman_body_text(doc, "HostName", text, sizeof(text)), 0);
	assert_string_equal(text, "Test Host Name");
	/* Too small a buffer is an error, not a silently cut value. */
	assert_int_equal(wsman_body_text(doc, "DigestRealm", text, 10), WSMAN_E_PARSE);
	assert_int_equal(wsman_body_text(doc, "NoSuchElement", text, sizeof(text)),
			 WSMAN_E_PARSE);
	/* Header elements are not Body text. */
	assert_int_equal(wsman_body_text(doc, "ResourceURI", text, sizeof(text)), WSMAN_E_PARSE);
	xmlFreeDoc(doc);
}

static void test_host_based_setup_get(void **state)
{
	xmlDocPtr doc = parse_fixture("ips_hostbasedsetup_get.xml");
	char text[128];

	(void)state;
	assert_int_equal(wsman_body_text(doc, "CurrentControlMode", text, sizeof(text)), 0);
	assert_string_equal(text, "2");
	assert_int_equal(wsman_body_text(doc, "AllowedControlModes", text, sizeof(text)), 0);
	assert_string_equal(text, "2");
	assert_int_equal(wsman_body_text(doc, "ConfigurationNonce", text, sizeof(text)), 0);
	assert_string_equal(text, "4P3sY7swlhjkhJNxDkEBIUcmpHE=");
	xmlFreeDoc(doc);
}

static void test_fault_fixture(void **state)
{
	struct wsman_error err = {0};
	xmlDocPtr doc = NULL;
	size_t len;
	char *body = fixture("fault_destination_unreachable.xml", &len);

	(void)state;
	assert_int_equal(wsman_parse_reply(body, len, &doc, &err), WSMAN_E_FAULT);
	assert_int_equal(err.code, WSMAN_E_FAULT);
	assert_null(doc);
	assert_non_null(strstr(err.msg, "No route can be determined"));
	assert_non_null(strstr(err.msg, "DestinationUnreachable"));
	assert_null(strchr(err.msg, '\n'));
	free(body);
}

#define ENV_OPEN                                                                                   \
	"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>"
#define ENV_CLOSE "</s:Body></s:Envelope>"

static void expect_parse_error(const char *body, size_t len, const char *words)
{
	struct wsman_error err = {0};
	xmlDocPtr doc = (xmlDocPtr)&err; /* must be reset */

	if (wsman_parse_reply(body, len, &doc, &err) != WSMAN_E_PARSE)
		fail_msg("accepted: %.60s", body);
	assert_int_equal(err.code, WSMAN_E_PARSE);
	assert_null(doc);
	assert_null(strchr(err.msg, '\n'));
	if (words && !strstr(err.msg, words))
		fail_msg("\"%s\" lacks \"%s\"", err.msg, words);
}

static void test_malformed_replies(void **state)
{
	static const char *const bad[] = {
		"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>",
		"not xml at all",
		"<html><body><p>Intel AMT</p></body></html>",
		/* SOAP 1.1 is not what AMT speaks */
		"<e:Envelope xmlns:e=\"http://schemas.xmlsoap.org/soap/envelope/\"><e:Body/>"
		"</e:Envelope>",
		/* the right local names in no namespace, or the wrong one: prefixes mean nothing */
		"<Envelope><Body><ReturnValue>0</ReturnValue></Body></Envelope>",
		"<s:Envelope xmlns:s=\"urn:other\"><s:Body/></s:Envelope>",
		/* no Body */
		"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Header/>"
		"</s:Envelope>",
		"<?xml version=\"1.0\"?>",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_parse_error(bad[i], strlen(bad[i]), NULL);
	expect_parse_error("", 0, "empty");
	expect_parse_error(NULL, 0, "empty");
}

static void test_prefix_is_not_the_namespace(void **state)
{
	/* The SOAP namespace under an unusual prefix still parses; "s" bound elsewhere does not. */
	static const char ok[] = "<q:Envelope xmlns:q=\"http://www.w3.org/2003/05/soap-envelope\">"
				 "<q:Body><x:R xmlns:x=\"urn:x\"><x:ReturnValue>5</x:ReturnValue>"
				 "</x:R></q:Body></q:Envelope>";
	struct wsman_error err = {0};
	xmlDocPtr doc = NULL;
	unsigned rv = 0;

	(void)state;
	assert_int_equal(wsman_parse_reply(ok, strlen(ok), &doc, &err), 0);
	assert_int_equal(wsman_return_value(doc, &rv), 0);
	assert_int_equal(rv, 5);
	xmlFreeDoc(doc);
}

#define ENUM_REPLY_HEAD                                                                     \
	"<a:Envelope xmlns:a=\"" WSMAN_NS_SOAP "\" xmlns:g=\"" WSMAN_NS_ENUM                     \
	"\" xmlns:h=\"" AMT_URI_POWER_SCHEME "\"><a:Header/><a:Body>"
#define ENUM_REPLY_TAIL "</a:Body></a:Envelope>"

struct seen_items {
	unsigned n;
	char names[4][64];
	char ids[4][64];
};

static void collect_item(xmlNodePtr item, void *ctx)
{
	struct seen_items *s = ctx;

	if (s->n < 4) {
		assert_int_equal(wsman_node_text(item, "ElementName", s->names[s->n],
						 sizeof(s->names[0])),
				 0);
		assert_int_equal(
			wsman_node_text(item, "InstanceID", s->ids[s->n], sizeof(s->ids[0])), 0);
	}
	s->n++;
}

static xmlDocPtr parse_ok(const char *text)
{
	struct wsman_error err = {0};
	xmlDocPtr doc = NULL;

	assert_int_equal(wsman_parse_reply(text, strlen(text), &doc, &err), 0);
	return doc;
}

static void test_enumeration_replies(void **state)
{
	static const char enumerated[] =
		ENUM_REPLY_HEAD "<g:EnumerateResponse><g:EnumerationContext> 07000000-0000 "
				"</g:EnumerationContext></g:EnumerateResponse>" ENUM_REPLY_TAIL;
	static const char last[] =
		ENUM_REPLY_HEAD "<g:PullResponse><g:Items>"
				"<h:AMT_SystemPowerScheme><h:ElementName>Desktop: ON in S0</h:ElementName>"
				"<h:InstanceID>Scheme 0</h:InstanceID></h:AMT_SystemPowerScheme>"
				"<h:AMT_SystemPowerScheme><h:ElementName>Desktop: ON in S0, S3, "
				"S4-5</h:ElementName><h:InstanceID>Scheme 1</h:InstanceID>"
				"</h:AMT_SystemPowerScheme></g:Items><g:EndOfSequence/></g:PullResponse>"
				ENUM_REPLY_TAIL;
	static const char more[] =
		ENUM_REPLY_HEAD "<g:PullResponse><g:EnumerationContext>next</g:EnumerationContext>"
				"<g:Items><h:AMT_SystemPowerScheme><h:ElementName>x</h:ElementName>"
				"<h:InstanceID>y</h:InstanceID></h:AMT_SystemPowerScheme></g:Items>"
				"</g:PullResponse>" ENUM_REPLY_TAIL;
	/* the elements right, the namespace wrong: not WS-Enumeration */
	static const char foreign[] =
		"<a:Envelope xmlns:a=\"" WSMAN_NS_SOAP "\" xmlns:g=\"urn:other\"><a:Body>"
		"<g:PullResponse><g:EnumerationContext>c</g:EnumerationContext><g:EndOfSequence/>"
		"</g:PullResponse>" ENUM_REPLY_TAIL;
	struct seen_items seen = {0};
	char context[WSMAN_CONTEXT_MAX];
	bool end = true;
	xmlDocPtr doc;

	(void)state;
	doc = parse_ok(enumerated);
	assert_int_equal(wsman_enumeration_context(doc, context, sizeof(context)), 0);
	assert_string_equal(context, "07000000-0000");
	assert_int_equal(wsman_pull_items(doc, collect_item, &seen, &end), WSMAN_E_PARSE);
	assert_int_equal(wsman_enumeration_context(doc, context, 4), WSMAN_E_PARSE);
	xmlFreeDoc(doc);

	doc = parse_ok(last);
	assert_int_equal(wsman_pull_items(doc, collect_item, &seen, &end), 0);
	assert_true(end);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.names[0], "Desktop: ON in S0");
	assert_string_equal(seen.ids[0], "Scheme 0");
	assert_string_equal(seen.names[1], "Desktop: ON in S0, S3, S4-5");
	assert_string_equal(seen.ids[1], "Scheme 1");
	assert_int_equal(wsman_enumeration_context(doc, context, sizeof(context)), WSMAN_E_PARSE);
	xmlFreeDoc(doc);

	doc = parse_ok(more);
	assert_int_equal(wsman_pull_items(doc, collect_item, &seen, &end), 0);
	assert_false(end);
	assert_int_equal(seen.n, 3);
	assert_int_equal(wsman_enumeration_context(doc, context, sizeof(context)), 0);
	assert_string_equal(context, "next");
	xmlFreeDoc(doc);

	doc = parse_ok(foreign);
	assert_int_equal(wsman_pull_items(doc, collect_item, &seen, &end), WSMAN_E_PARSE);
	assert_int_equal(wsman_enumeration_context(doc, context, sizeof(context)), WSMAN_E_PARSE);
	xmlFreeDoc(doc);
	assert_int_equal(seen.n, 3);
}

static void test_return_value_strict(void **state)
{
	static const char *const bad[] = {"-1", "0x10", "1 2", "", "4294967296", "12a"};
	char body[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct wsman_error err = {0};
		xmlDocPtr doc = NULL;
		unsigned rv;

		snprintf(body, sizeof(body), ENV_OPEN "<R><ReturnValue>%s</ReturnValue></R>" ENV_CLOSE,
			 bad[i]);
		assert_int_equal(wsman_parse_reply(body, strlen(body), &doc, &err), 0);
		if (wsman_return_value(doc, &rv) != WSMAN_E_PARSE)
			fail_msg("ReturnValue \"%s\" accepted", bad[i]);
		xmlFreeDoc(doc);
	}
}

static void test_entity_bomb(void **state)
{
	static const char bomb[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE s:Envelope [\n"
		" <!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\">\n"
		" <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
		" <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
		" <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
		" <!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\n"
		" <!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">\n"
		" <!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">\n"
		" <!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">\n"
		"]>\n" ENV_OPEN "<R><ReturnValue>&h;</ReturnValue></R>" ENV_CLOSE;
	static const char external[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n" ENV_OPEN
		"<R><ReturnValue>&x;</ReturnValue></R>" ENV_CLOSE;
	static const char external_dtd[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE s:Envelope SYSTEM \"http://127.0.0.1:1/evil.dtd\">\n" ENV_OPEN ENV_CLOSE;
	struct timespec start;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &start);
	expect_parse_error(bomb, strlen(bomb), "document type");
	assert_true(elapsed_ms(&start) < 1000);
	expect_parse_error(external, strlen(external), "document type");
	expect_parse_error(external_dtd, strlen(external_dtd), "document type");
}

static char *huge_reply(size_t size)
{
	char *body = malloc(size + 1);
	size_t open = strlen(ENV_OPEN "<R>"), close = strlen("</R>" ENV_CLOSE);

	assert_non_null(body);
	memcpy(body, ENV_OPEN "<R>", open);
	memset(body + open, 'x', size - open - close);
	memcpy(body + size - close, "</R>" ENV_CLOSE, close);
	body[size] = '\0';
	return body;
}

static void test_huge_reply(void **state)
{
	char *body = huge_reply((size_t)2 * 1024 * 1024);

	(void)state;
	expect_parse_error(body, strlen(body), "limit");
	free(body);
}

static void test_fault_without_subcode(void **state)
{
	static const char fault[] =
		ENV_OPEN "<s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason>"
			 "<s:Text xml:lang=\"en\">Line one\n\tline  two</s:Text></s:Reason>"
			 "</s:Fault>" ENV_CLOSE;
	struct wsman_error err = {0};
	xmlDocPtr doc = NULL;

	(void)state;
	assert_int_equal(wsman_parse_reply(fault, strlen(fault), &doc, &err), WSMAN_E_FAULT);
	assert_non_null(strstr(err.msg, "Receiver"));
	assert_non_null(strstr(err.msg, "Line one line two")); /* one line, blanks collapsed */
	assert_null(doc);
}

/* ---- /proc/net/tcp ---- */

#define TCP_HEADER                                                                                 \
	"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "    \
	"timeout inode\n"
#define TCP6_HEADER                                                                                \
	"  sl  local_address                         remote_address                        st "  \
	"tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

/* An address as the kernel prints it: each 32-bit word of the raw bytes as a native integer. */
static void kernel_hex(const uint8_t *bytes, size_t n, char *out)
{
	for (size_t i = 0; i < n; i += 4) {
		uint32_t w;

		memcpy(&w, bytes + i, 4);
		sprintf(out + 2 * i, "%08X", w);
	}
}

static void tcp_line(char *out, size_t cap, int sl, const char *ipv4, uint16_t port, int st,
		     unsigned uid)
{
	struct in_addr a;
	char hex[9];

	assert_int_equal(inet_pton(AF_INET, ipv4, &a), 1);
	kernel_hex((const uint8_t *)&a, 4, hex);
	snprintf(out, cap,
		 "%4d: %s:%04X 00000000:0000 %02X 00000000:00000000 00:00000000 00000000 %5u "
		 "       0 %d 1 0000000000000000 100 0 0 10 0\n",
		 sl, hex, port, st, uid, 1000 + sl);
}

static void tcp6_line(char *out, size_t cap, int sl, const char *ipv6, uint16_t port, int st,
		      unsigned uid)
{
	struct in6_addr a;
	char hex[33];

	assert_int_equal(inet_pton(AF_INET6, ipv6, &a), 1);
	kernel_hex(a.s6_addr, 16, hex);
	snprintf(out, cap,
		 "%4d: %s:%04X 00000000000000000000000000000000:0000 %02X 00000000:00000000 "
		 "00:00000000 00000000 %5u        0 %d 1 0000000000000000 100 0 0 10 0\n",
		 sl, hex, port, st, uid, 2000 + sl);
}

struct fake_proc {
	char root[64];
	char tcp[4096];
	char tcp6[4096];
	bool with_tcp, with_tcp6;
};

/* Append TEXT to the buffer BUF of CAP bytes; the test fails when it does not fit. */
static void append(char *buf, size_t cap, const char *text)
{
	size_t used = strlen(buf);

	assert_true(used + strlen(text) < cap);
	memcpy(buf + used, text, strlen(text) + 1);
}

#define APPEND(buf, text) append(buf, sizeof(buf), text)

static void fake_begin(struct fake_proc *p)
{
	memset(p, 0, sizeof(*p));
	strcpy(p->root, "/tmp/wsman-proc-XXXXXX");
	assert_non_null(mkdtemp(p->root));
	strcpy(p->tcp, TCP_HEADER);
	strcpy(p->tcp6, TCP6_HEADER);
	p->with_tcp = true;
}

static void fake_add4(struct fake_proc *p, const char *ip, uint16_t port, int st, unsigned uid)
{
	char line[256];
	int sl = 0;

	for (const char *s = p->tcp; (s = strchr(s, '\n')); s++)
		sl++;
	tcp_line(line, sizeof(line), sl - 1, ip, port, st, uid);
	APPEND(p->tcp, line);
}

static void fake_add6(struct fake_proc *p, const char *ip, uint16_t port, int st, unsigned uid)
{
	char line[256];

	tcp6_line(line, sizeof(line), 0, ip, port, st, uid);
	APPEND(p->tcp6, line);
	p->with_tcp6 = true;
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* Write the files, ask, and clean up. */
static bool fake_ask(struct fake_proc *p, uint16_t port)
{
	char net[96], path[128];
	bool r;

	snprintf(net, sizeof(net), "%s/net", p->root);
	mkdir(net, 0700);
	if (p->with_tcp)
		write_text(net, "tcp", p->tcp);
	if (p->with_tcp6)
		write_text(net, "tcp6", p->tcp6);
	r = wsman_lms_listener_is_root(p->root, port);
	snprintf(path, sizeof(path), "%s/tcp", net);
	unlink(path);
	snprintf(path, sizeof(path), "%s/tcp6", net);
	unlink(path);
	rmdir(net);
	rmdir(p->root);
	return r;
}

static void test_proc_format(void **state)
{
	char line[256];

	(void)state;
	/* As the kernel writes it on x86: 127.0.0.1:16992 is "0100007F:4260". */
	tcp_line(line, sizeof(line), 0, "127.0.0.1", 16992, 0x0A, 0);
	if (htonl(1) != 1)
		assert_non_null(strstr(line, " 0100007F:4260 "));
}

static void test_proc_root_listener(void **state)
{
	struct fake_proc p;

	(void)state;
	fake_begin(&p);
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
	assert_true(fake_ask(&p, 16992));

	/* The literal kernel text, as it reads on x86. */
	if (htonl(1) != 1) {
		fake_begin(&p);
		APPEND(p.tcp, "   0: 0100007F:4260 00000000:0000 0A 00000000:00000000 00:00000000 "
			      "00000000     0        0 20433 1 0000000000000000 100 0 0 10 0\n");
		assert_true(fake_ask(&p, 16992));
		fake_begin(&p);
		APPEND(p.tcp, "   0: 0100007F:4260 00000000:0000 0A 00000000:00000000 00:00000000 "
			      "00000000  1000        0 20433 1 0000000000000000 100 0 0 10 0\n");
		assert_false(fake_ask(&p, 16992));
		/* 0x4220 is port 16928 */
		fake_begin(&p);
		APPEND(p.tcp, "   0: 0100007F:4220 00000000:0000 0A 00000000:00000000 00:00000000 "
			      "00000000     0        0 20433 1 0000000000000000 100 0 0 10 0\n");
		assert_true(fake_ask(&p, 16928));
	}

	/* Root on the wildcard address also takes 127.0.0.1. */
	fake_begin(&p);
	fake_add4(&p, "0.0.0.0", 16993, 0x0A, 0);
	assert_true(fake_ask(&p, 16993));

	/* A non-root established connection on the port is not a listener. */
	fake_begin(&p);
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
	fake_add4(&p, "127.0.0.1", 16992, 0x01, 1000);
	assert_true(fake_ask(&p, 16992));

	/* ::1 does not take IPv4 connections. */
	fake_begin(&p);
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
	fake_add6(&p, "::1", 16992, 0x0A, 1000);
	assert_true(fake_ask(&p, 16992));
}

static void test_proc_refuses(void **state)
{
	struct fake_proc p;

	(void)state;
	fake_begin(&p); /* a non-root listener */
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 1000);
	assert_false(fake_ask(&p, 16992));

	fake_begin(&p); /* nobody listening */
	assert_false(fake_ask(&p, 16992));

	fake_begin(&p); /* root, but on another port */
	fake_add4(&p, "127.0.0.1", 16993, 0x0A, 0);
	assert_false(fake_ask(&p, 16992));

	fake_begin(&p); /* root, but on another address */
	fake_add4(&p, "10.0.0.5", 16992, 0x0A, 0);
	assert_false(fake_ask(&p, 16992));

	fake_begin(&p); /* root is not alone: a non-root wildcard listener shares the port */
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
	fake_add4(&p, "0.0.0.0", 16992, 0x0A, 65534);
	assert_false(fake_ask(&p, 16992));

	fake_begin(&p); /* a non-root dual-stack listener on :: */
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
	fake_add6(&p, "::", 16992, 0x0A, 1000);
	assert_false(fake_ask(&p, 16992));

	fake_begin(&p); /* a non-root v4-mapped listener */
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
	fake_add6(&p, "::ffff:127.0.0.1", 16992, 0x0A, 1000);
	assert_false(fake_ask(&p, 16992));

	fake_begin(&p); /* no /proc/net/tcp at all */
	p.with_tcp = false;
	assert_false(fake_ask(&p, 16992));
}

static void test_proc_malformed(void **state)
{
	static const char *const lines[] = {
		"garbage\n",
		"   0: 0100007F:422 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
		"       0 1 1\n",
		"   0: 0100007G:4220 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
		"       0 1 1\n",
		"   0: 0100007F:4220 00000000:0000 0A 00000000:00000000 00:00000000 00000000    -0 "
		"       0 1 1\n",
		"   0: 0100007F:4220 00000000:0000 0A 00000000:00000000 00:00000000 00000000 x "
		"       0 1 1\n",
		"   0: 0100007F:4220 00000000:0000 A 00000000:00000000 00:00000000 00000000     0 "
		"       0 1 1\n",
		"   0: 0100007F:4220 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n",
		"   0: 0100007F:4220 00000000:0000 0A 00000000:00000000 00:00000000 00000000 "
		"99999999999        0 1 1\n",
	};
	struct fake_proc p;

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		fake_begin(&p);
		fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
		APPEND(p.tcp, lines[i]);
		if (fake_ask(&p, 16992))
			fail_msg("malformed line %zu accepted", i);
	}

	fake_begin(&p); /* an overlong line */
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
	memset(p.tcp + strlen(p.tcp), 'A', 1000);
	APPEND(p.tcp, "\n");
	assert_false(fake_ask(&p, 16992));

	fake_begin(&p); /* no header */
	p.tcp[0] = '\0';
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
	assert_false(fake_ask(&p, 16992));

	fake_begin(&p); /* a broken tcp6 spoils the answer too */
	fake_add4(&p, "127.0.0.1", 16992, 0x0A, 0);
	APPEND(p.tcp6, "garbage\n");
	p.with_tcp6 = true;
	assert_false(fake_ask(&p, 16992));
}

/* ---- real sockets ---- */

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static bool running_as_root(void)
{
	return geteuid() == 0;
}

static void test_real_proc_root_listener(void **state)
{
	uint16_t port;
	int fd;

	(void)state;
	if (!running_as_root())
		skip();
	fd = listen_loopback(&port);
	assert_true(wsman_lms_listener_is_root("/proc", port));
	close(fd);
	assert_false(wsman_lms_listener_is_root("/proc", port));
}

/* ---- an AMT-like WS-Man server: libmicrohttpd with Digest ---- */

#define TEST_REALM "Digest:F3EB554784E729164447A89F60B641C5"
#define TEST_USER  "admin"

struct server {
	struct MHD_Daemon *daemon;
	uint16_t port;
	uint8_t a1[16];
	const char *secret; /* the password, which must never be seen on the wire */
	pthread_mutex_t lock;
	/* what to answer once authenticated */
	unsigned status;
	const char *reply;
	size_t reply_len;
	/* what was seen */
	unsigned connections, requests, authenticated;
	bool secret_seen;
	struct httpd_request last;
	char body[16384];
};

static enum MHD_Result look_for_secret(void *cls, enum MHD_ValueKind kind, const char *key,
				       const char *value)
{
	struct server *s = cls;

	(void)kind;
	if ((key && strstr(key, s->secret)) || (value && strstr(value, s->secret)))
		s->secret_seen = true;
	return MHD_YES;
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url,
			     const char *method, const char *version, const char *upload_data,
			     size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct httpd_upload *up;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int auth;

	(void)version;
	up = httpd_gather(con_cls, upload_data, upload_data_size, &ret);
	if (!up)
		return ret;
	pthread_mutex_lock(&s->lock);
	s->requests++;
	httpd_record(conn, method, url, &s->last);
	MHD_get_connection_values(conn, MHD_HEADER_KIND, look_for_secret, s);
	if (strstr(url, s->secret))
		s->secret_seen = true;
	pthread_mutex_unlock(&s->lock);

	auth = MHD_digest_auth_check_digest2(conn, TEST_REALM, TEST_USER, s->a1, sizeof(s->a1),
					     300, MHD_DIGEST_ALG_MD5);
	if (auth != MHD_YES) {
		resp = httpd_response("", 0);
		ret = MHD_queue_auth_fail_response2(conn, TEST_REALM, "0123456789abcdef", resp,
						    auth == MHD_INVALID_NONCE ? MHD_YES : MHD_NO,
						    MHD_DIGEST_ALG_MD5);
		MHD_destroy_response(resp);
		return ret;
	}
	pthread_mutex_lock(&s->lock);
	s->authenticated++;
	snprintf(s->body, sizeof(s->body), "%s", up->data);
	if (strstr(s->body, s->secret))
		s->secret_seen = true;
	pthread_mutex_unlock(&s->lock);
	resp = httpd_response(s->reply, s->reply_len);
	MHD_add_response_header(resp, "Content-Type", "application/soap+xml; charset=UTF-8");
	return httpd_queue(conn, s->status, resp);
}

static void connection_event(void *cls, struct MHD_Connection *conn, void **socket_context,
			     enum MHD_ConnectionNotificationCode toe)
{
	struct server *s = cls;

	(void)conn;
	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		pthread_mutex_lock(&s->lock);
		s->connections++;
		pthread_mutex_unlock(&s->lock);
	}
}

static void hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
	size_t got = 0;

	assert_int_equal(OPENSSL_hexstr2buf_ex(out, n, &got, hex, '\0'), 1);
	assert_int_equal(got, n);
}

/* The server stores only the Digest A1, as AMT does after Setup. */
static void server_start(struct server *s, const char *password)
{
	static uint8_t nonce_seed[32];
	/* MHD_OPTION_ARRAY items: a callback is given as an intptr_t (microhttpd.h) */
	struct MHD_OptionItem digest[] = {
		{MHD_OPTION_DIGEST_AUTH_RANDOM, sizeof(nonce_seed), nonce_seed},
		{MHD_OPTION_NONCE_NC_SIZE, 64, NULL},
		{MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)connection_event, s},
		{MHD_OPTION_END, 0, NULL},
	};
	char a1[33];

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->secret = password;
	assert_int_equal(password_digest_a1(TEST_USER, TEST_REALM, password, a1), 0);
	hex_to_bytes(a1, s->a1, sizeof(s->a1));
	assert_int_equal(RAND_bytes(nonce_seed, sizeof(nonce_seed)), 1);
	s->daemon = httpd_start(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC, serve, httpd_upload_done,
				s, digest, &s->port);
}

static void server_answer(struct server *s, unsigned status, const char *reply, size_t len)
{
	pthread_mutex_lock(&s->lock);
	s->status = status;
	s->reply = reply;
	s->reply_len = len;
	pthread_mutex_unlock(&s->lock);
}

static void server_stop(struct server *s)
{
	MHD_stop_daemon(s->daemon);
	pthread_mutex_destroy(&s->lock);
}

static struct wsman_client *lms_client(uint16_t port, const char *pass, int timeout_ms)
{
	struct wsman_target t = {
		.route = WSMAN_VIA_LMS,
		.lms_host = "127.0.0.1",
		.port = port,
		.timeout_ms = timeout_ms,
	};
	struct wsman_error err = {0};
	struct wsman_client *c = NULL;

	if (wsman_client_new(&t, TEST_USER, pass, &c, &err) != 0)
		fail_msg("client: %s", err.msg);
	return c;
}

/* Test passwords are built at run time so that none is a literal in the binary either. */
static void make_password(char *out, size_t cap)
{
	assert_int_equal(password_generate(PASSWORD_ADMIN, 16, out), 0);
	assert_true(cap > 16);
}

static void assert_no_secret(const struct wsman_error *err, const char *pass)
{
	if (strstr(err->msg, pass))
		fail_msg("an error text holds the password");
}

/* A client on the LMS route and the Digest server it talks to. */
struct lms {
	char pass[PASSWORD_MAX + 1]; /* the server's, made here */
	struct server s;
	struct wsman_client *c;
};

/*
 * The server answering STATUS with REPLY (LEN bytes) once authenticated, and a client with
 * CLIENT_PASS, or with the server's password when NULL. As root only (the test is skipped
 * otherwise): the client insists on a root-owned listener.
 */
static void lms_start(struct lms *lms, unsigned status, const char *reply, size_t len,
		      const char *client_pass)
{
	if (!running_as_root())
		skip();
	make_password(lms->pass, sizeof(lms->pass));
	server_start(&lms->s, lms->pass);
	server_answer(&lms->s, status, reply, len);
	lms->c = lms_client(lms->s.port, client_pass ? client_pass : lms->pass, 5000);
}

static void lms_end(struct lms *lms)
{
	wsman_client_free(lms->c);
	server_stop(&lms->s);
}

static void test_http_digest_get(void **state)
{
	char realm[128];
	struct wsman_error err = {0};
	xmlDocPtr reply = NULL;
	struct lms lms;
	size_t len;
	char *body = fixture("amt_general_get.xml", &len);
	unsigned first_connections;

	(void)state;
	lms_start(&lms, 200, body, len, NULL);

	if (wsman_get(lms.c, AMT_URI_GENERAL_SETTINGS, &reply, &err) != 0)
		fail_msg("get: %d %s", err.code, err.msg);
	assert_int_equal(err.http_status, 200);
	assert_int_equal(wsman_body_text(reply, "DigestRealm", realm, sizeof(realm)), 0);
	assert_string_equal(realm, TEST_REALM);
	xmlFreeDoc(reply);

	pthread_mutex_lock(&lms.s.lock);
	assert_string_equal(lms.s.last.method, "POST");
	assert_string_equal(lms.s.last.url, "/wsman");
	assert_string_equal(lms.s.last.content_type, "application/soap+xml; charset=utf-8");
	assert_non_null(strstr(lms.s.body, WSMAN_ACTION_GET));
	assert_non_null(strstr(lms.s.body, AMT_URI_GENERAL_SETTINGS));
	assert_int_equal(lms.s.authenticated, 1);
	assert_true(lms.s.requests >= 2); /* the first one met the Digest challenge */
	first_connections = lms.s.connections;
	pthread_mutex_unlock(&lms.s.lock);

	/* The handle keeps the nonce: the next request authenticates at once, on one connection. */
	if (wsman_get(lms.c, AMT_URI_GENERAL_SETTINGS, &reply, &err) != 0)
		fail_msg("second get: %d %s", err.code, err.msg);
	xmlFreeDoc(reply);
	pthread_mutex_lock(&lms.s.lock);
	assert_int_equal(lms.s.authenticated, 2);
	assert_int_equal(lms.s.connections, first_connections + 1);
	assert_false(lms.s.secret_seen);
	pthread_mutex_unlock(&lms.s.lock);

	lms_end(&lms);
	free(body);
}

static void test_http_digest_invoke(void **state)
{
	char a1[33];
	const struct wsman_param params[2] = {
		{"NetAdminPassEncryptionType", "2"},
		{"NetworkAdminPassword", a1},
	};
	struct wsman_error err = {0};
	xmlDocPtr reply = NULL;
	struct lms lms;
	unsigned rv = 99;
	size_t len;
	char *body = fixture("ips_hostbasedsetup_setup.xml", &len);

	(void)state;
	assert_int_equal(password_digest_a1("admin", TEST_REALM, "Zz9~.+=-new", a1), 0);
	lms_start(&lms, 200, body, len, NULL);
	if (wsman_invoke(lms.c, IPS_URI_HOST_BASED_SETUP, "Setup", params, 2, &reply, &err) != 0)
		fail_msg("invoke: %d %s", err.code, err.msg);
	assert_int_equal(wsman_return_value(reply, &rv), 0);
	assert_int_equal(rv, 0);
	xmlFreeDoc(reply);
	pthread_mutex_lock(&lms.s.lock);
	assert_non_null(strstr(lms.s.body, IPS_URI_HOST_BASED_SETUP "/Setup</"));
	assert_non_null(strstr(lms.s.body, a1));
	assert_false(lms.s.secret_seen);
	pthread_mutex_unlock(&lms.s.lock);
	lms_end(&lms);
	free(body);
}

/* AMT (here a server answering every request alike) whose enumeration never ends. */
static void test_http_enumeration_never_ends(void **state)
{
	static const char endless[] =
		ENUM_REPLY_HEAD "<g:PullResponse><g:EnumerationContext>again</g:EnumerationContext>"
				"<g:Items><h:AMT_SystemPowerScheme><h:ElementName>x</h:ElementName>"
				"<h:InstanceID>y</h:InstanceID></h:AMT_SystemPowerScheme></g:Items>"
				"</g:PullResponse>" ENUM_REPLY_TAIL;
	struct wsman_error err = {0};
	struct seen_items seen = {0};
	struct lms lms;

	(void)state;
	lms_start(&lms, 200, endless, strlen(endless), NULL);
	assert_int_equal(wsman_enumerate(lms.c, AMT_URI_POWER_SCHEME, collect_item, &seen, &err),
			 WSMAN_E_PARSE);
	assert_non_null(strstr(err.msg, "did not end after 16 Pulls"));
	assert_int_equal(seen.n, WSMAN_PULLS_MAX);
	pthread_mutex_lock(&lms.s.lock);
	assert_int_equal(lms.s.authenticated, 1 + WSMAN_PULLS_MAX);
	assert_non_null(strstr(lms.s.body, "again</"));
	pthread_mutex_unlock(&lms.s.lock);
	lms_end(&lms);
}

static void test_http_wrong_password(void **state)
{
	char wrong[PASSWORD_MAX + 1];
	struct wsman_error err = {0};
	xmlDocPtr reply = (xmlDocPtr)&err;
	struct lms lms;
	size_t len;
	char *body = fixture("amt_general_get.xml", &len);

	(void)state;
	make_password(wrong, sizeof(wrong));
	lms_start(&lms, 200, body, len, wrong);
	assert_int_equal(wsman_get(lms.c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_AUTH);
	assert_int_equal(err.code, WSMAN_E_AUTH);
	assert_int_equal(err.http_status, 401);
	assert_null(reply);
	assert_no_secret(&err, wrong);
	assert_no_secret(&err, lms.pass);
	assert_non_null(strstr(err.msg, "401"));
	pthread_mutex_lock(&lms.s.lock);
	assert_int_equal(lms.s.authenticated, 0);
	pthread_mutex_unlock(&lms.s.lock);
	lms_end(&lms);
	free(body);
}

static void test_http_fault_400(void **state)
{
	struct wsman_error err = {0};
	xmlDocPtr reply = NULL;
	struct lms lms;
	size_t len;
	char *body = fixture("fault_destination_unreachable.xml", &len);

	(void)state;
	lms_start(&lms, 400, body, len, NULL);
	assert_int_equal(wsman_get(lms.c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_FAULT);
	assert_int_equal(err.http_status, 400);
	assert_non_null(strstr(err.msg, "No route can be determined"));
	assert_non_null(strstr(err.msg, "DestinationUnreachable"));
	assert_null(reply);
	assert_no_secret(&err, lms.pass);
	lms_end(&lms);
	free(body);
}

static void test_http_other_failures(void **state)
{
	static const char oops[] = "<html>Internal error</html>";
	static const char garbage[] = "<s:Envelope";
	struct wsman_error err = {0};
	xmlDocPtr reply = NULL;
	struct lms lms;
	char *big = huge_reply((size_t)3 * 1024 * 1024);

	(void)state;
	lms_start(&lms, 0, NULL, 0, NULL);

	server_answer(&lms.s, 500, oops, strlen(oops));
	assert_int_equal(wsman_get(lms.c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_HTTP);
	assert_int_equal(err.http_status, 500);
	assert_non_null(strstr(err.msg, "500"));

	server_answer(&lms.s, 200, garbage, strlen(garbage));
	assert_int_equal(wsman_get(lms.c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_PARSE);

	server_answer(&lms.s, 200, big, strlen(big));
	assert_int_equal(wsman_get(lms.c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_PARSE);
	assert_non_null(strstr(err.msg, "limit"));
	assert_null(reply);

	lms_end(&lms);
	free(big);
}

static void test_http_timeout(void **state)
{
	char pass[PASSWORD_MAX + 1];
	struct wsman_error err = {0};
	struct wsman_client *c;
	xmlDocPtr reply = NULL;
	struct timespec start;
	uint16_t port;
	int fd;

	(void)state;
	if (!running_as_root())
		skip();
	/* A listener that never accepts: the kernel completes the handshake, nobody answers. */
	fd = listen_loopback(&port);
	make_password(pass, sizeof(pass));
	c = lms_client(port, pass, 500);
	clock_gettime(CLOCK_MONOTONIC, &start);
	assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_TIMEOUT);
	assert_true(elapsed_ms(&start) < 3000);
	assert_no_secret(&err, pass);
	wsman_client_free(c);
	close(fd);
}

static void test_lms_nobody_listening(void **state)
{
	char pass[PASSWORD_MAX + 1];
	struct wsman_error err = {0};
	struct wsman_client *c;
	xmlDocPtr reply = NULL;
	uint16_t port;

	(void)state;
	close(listen_loopback(&port));
	make_password(pass, sizeof(pass));
	c = lms_client(port, pass, 2000);
	assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_CONNECT);
	assert_non_null(strstr(err.msg, "not owned by root"));
	wsman_client_free(c);
}

/*
 * A child drops to nobody and listens on 127.0.0.1; the client must refuse to talk to it and
 * the child must see no connection at all.
 */
static void test_lms_non_root_listener(void **state)
{
	int port_pipe[2], done_pipe[2], result_pipe[2];
	char pass[PASSWORD_MAX + 1];
	struct wsman_error err = {0};
	struct wsman_client *c;
	xmlDocPtr reply = NULL;
	unsigned accepted = 99;
	uint16_t port = 0;
	int status;
	pid_t pid;

	(void)state;
	if (!running_as_root())
		skip();
	assert_int_equal(pipe(port_pipe), 0);
	assert_int_equal(pipe(done_pipe), 0);
	assert_int_equal(pipe(result_pipe), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_in sin = {.sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t sl = sizeof(sin);
		unsigned n = 0;
		int fd;

		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
		    listen(fd, 8) != 0 || getsockname(fd, (struct sockaddr *)&sin, &sl) != 0)
			_exit(3);
		port = ntohs(sin.sin_port);
		if (write(port_pipe[1], &port, sizeof(port)) != sizeof(port))
			_exit(4);
		for (;;) {
			struct pollfd p[2] = {{fd, POLLIN, 0}, {done_pipe[0], POLLIN, 0}};
			int a;

			if (poll(p, 2, 10000) <= 0 || (p[1].revents & (POLLIN | POLLHUP)))
				break;
			a = accept(fd, NULL, NULL);
			if (a >= 0) {
				n++;
				close(a);
			}
		}
		if (write(result_pipe[1], &n, sizeof(n)) != sizeof(n))
			_exit(5);
		_exit(0);
	}
	assert_int_equal(read(port_pipe[0], &port, sizeof(port)), sizeof(port));
	assert_true(port != 0);

	assert_false(wsman_lms_listener_is_root("/proc", port));
	make_password(pass, sizeof(pass));
	c = lms_client(port, pass, 2000);
	assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_CONNECT);
	assert_non_null(strstr(err.msg, "not owned by root"));
	assert_non_null(strstr(err.msg, "not sending the admin digest"));
	assert_null(reply);
	wsman_client_free(c);

	assert_int_equal(write(done_pipe[1], "x", 1), 1);
	assert_int_equal(read(result_pipe[0], &accepted, sizeof(accepted)), sizeof(accepted));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(accepted, 0);
	for (int i = 0; i < 2; i++) {
		close(port_pipe[i]);
		close(done_pipe[i]);
		close(result_pipe[i]);
	}
}

static void test_client_rejects_bad_targets(void **state)
{
	struct wsman_target lan = {.route = WSMAN_VIA_LMS, .lms_host = "192.0.2.10", .port = 16992};
	struct wsman_target apf = {.route = WSMAN_VIA_APF, .apf = NULL, .port = 16992};
	struct wsman_target zero = {.route = WSMAN_VIA_LMS, .port = 0};
	struct wsman_error err = {0};
	struct wsman_client *c = NULL;

	(void)state;
	assert_int_equal(wsman_client_new(&lan, "admin", "x", &c, &err), WSMAN_E_INTERNAL);
	assert_null(c);
	assert_int_equal(wsman_client_new(&apf, "admin", "x", &c, &err), WSMAN_E_INTERNAL);
	assert_int_equal(wsman_client_new(&zero, "admin", "x", &c, &err), WSMAN_E_INTERNAL);
	assert_int_equal(wsman_client_new(&lan, "admin", NULL, &c, &err), WSMAN_E_INTERNAL);
	wsman_client_free(NULL);
}

/* A pin is a SHA-256 or a SHA-384; an identity is a certificate with its key. */
static void test_client_rejects_bad_tls_settings(void **state)
{
	const struct wsman_tls_identity no_key = {NULL, NULL, NULL};
	struct wsman_target t = {.route = WSMAN_VIA_LMS, .lms_host = "127.0.0.1", .port = 16993,
				 .tls = true, .pin_len = 20};
	struct wsman_error err = {0};
	struct wsman_client *c = NULL;

	(void)state;
	assert_int_equal(wsman_client_new(&t, "admin", "x", &c, &err), WSMAN_E_INTERNAL);
	assert_non_null(strstr(err.msg, "pin"));
	assert_null(c);
	t.pin_len = 32;
	t.identity = &no_key;
	assert_int_equal(wsman_client_new(&t, "admin", "x", &c, &err), WSMAN_E_INTERNAL);
	assert_null(c);
	t.identity = NULL;
	assert_int_equal(wsman_client_new(&t, "admin", "x", &c, &err), 0);
	wsman_client_free(c);
}

/*
 * ---- the APF route end to end ----
 *
 * The real thing on the host side (mei's APF session and bridge, libcurl on the bridge's Unix
 * socket) against the emulator's firmware side (tests/amtsim/apf_fw.c) behind a small Unix
 * SOCK_SEQPACKET server speaking the emulator's "unix:" device convention
 * (tests/helpers/fake_amt.h). Behind port 16992 is the Digest server above: each channel's
 * service end is handed to it with MHD_add_connection, as the emulator does.
 */

struct amt {
	struct fake_amt fw;
	struct server *http; /* NULL: a service that takes the bytes and never answers */
	int silent[16];      /* the far ends of those */
	unsigned silent_count;
};

/* Under the fake's lock (fake_amt_service_fn). */
static int amt_open_service(void *ctx, uint16_t port)
{
	struct amt *a = ctx;
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int sv[2];

	if (port != APF_PORT_HTTP || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	if (!a->http) {
		if (a->silent_count < sizeof(a->silent) / sizeof(a->silent[0]))
			a->silent[a->silent_count++] = sv[1];
		else
			close(sv[1]);
		return sv[0];
	}
	if (MHD_add_connection(a->http->daemon, sv[1], (struct sockaddr *)&peer, sizeof(peer)) !=
	    MHD_YES) {
		close(sv[0]);
		return -1;
	}
	return sv[0];
}

static void amt_start(struct amt *a, const struct apf_fw_config *cfg, struct server *http)
{
	memset(a, 0, sizeof(*a));
	a->http = http;
	fake_amt_start(&a->fw, "test-wsman-amt", cfg, amt_open_service, a);
}

static void amt_stop(struct amt *a)
{
	fake_amt_stop(&a->fw);
	for (unsigned i = 0; i < a->silent_count; i++)
		close(a->silent[i]);
	assert_int_equal(a->fw.total.protocol_errors, 0);
}

/* A private base for the clients' socket directories; empty again once they are freed. */
static void socket_base(char *dir, size_t cap)
{
	snprintf(dir, cap, "/tmp/test-wsman-sock.XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static struct wsman_client *apf_client(struct apf_session *session, const char *base,
				       const char *pass)
{
	struct wsman_target t = {
		.route = WSMAN_VIA_APF,
		.apf = session,
		.port = apf_wsman_port(session),
		.timeout_ms = 5000,
		.socket_dir = base,
	};
	struct wsman_error err = {0};
	struct wsman_client *c = NULL;

	if (wsman_client_new(&t, TEST_USER, pass, &c, &err) != 0)
		fail_msg("client: %s", err.msg);
	return c;
}

static unsigned entries(const char *dir)
{
	DIR *d = opendir(dir);
	unsigned n = 0;

	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static struct apf_bridge_status bridge_of(struct apf_session *session)
{
	struct apf_bridge_status st;

	apf_bridge_status(session, &st);
	return st;
}

/* The APF route end to end: the Digest server, the fake AMT in front of it, a session. */
struct route {
	char pass[PASSWORD_MAX + 1]; /* the server's, made here */
	char base[64];               /* for the clients' socket directories (socket_base) */
	struct server s;
	struct amt amt;
	struct apf_session *session;
};

/* The Digest server behind port 16992 when WITH_SERVER, else a service that never answers. */
static void route_start(struct route *rt, const struct apf_fw_config *cfg, bool with_server)
{
	make_password(rt->pass, sizeof(rt->pass));
	if (with_server)
		server_start(&rt->s, rt->pass);
	amt_start(&rt->amt, cfg, with_server ? &rt->s : NULL);
	rt->session = fake_amt_session(&rt->amt.fw);
	socket_base(rt->base, sizeof(rt->base));
}

/* Close the session and stop the AMT (whose counters stay readable), find the socket base empty,
 * stop the server. */
static void route_end(struct route *rt)
{
	apf_close(rt->session);
	amt_stop(&rt->amt);
	assert_int_equal(rmdir(rt->base), 0);
	if (rt->amt.http)
		server_stop(&rt->s);
}

static void test_apf_route(void **state)
{
	char realm[128];
	struct apf_bridge_status st;
	struct wsman_error err = {0};
	struct wsman_client *c;
	xmlDocPtr reply = NULL;
	struct route rt;
	size_t len, fault_len;
	char *body = fixture("amt_general_get.xml", &len);
	char *fault = fixture("fault_destination_unreachable.xml", &fault_len);

	(void)state;
	route_start(&rt, NULL, true);
	server_answer(&rt.s, 200, body, len);
	c = apf_client(rt.session, rt.base, rt.pass);
	assert_int_equal(entries(rt.base), 1); /* its private directory */
	assert_true(bridge_of(rt.session).listening);
	for (int i = 0; i < 3; i++) {
		if (wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err) != 0)
			fail_msg("get %d: %d %s", i, err.code, err.msg);
		assert_int_equal(wsman_body_text(reply, "DigestRealm", realm, sizeof(realm)), 0);
		assert_string_equal(realm, TEST_REALM);
		xmlFreeDoc(reply);
	}
	/* a SOAP fault comes through a channel like any reply */
	server_answer(&rt.s, 400, fault, fault_len);
	assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_FAULT);
	assert_non_null(strstr(err.msg, "DestinationUnreachable"));
	assert_null(reply);
	pthread_mutex_lock(&rt.s.lock);
	assert_string_equal(rt.s.last.method, "POST");
	assert_string_equal(rt.s.last.url, "/wsman");
	assert_int_equal(rt.s.authenticated, 4);
	assert_false(rt.s.secret_seen);
	pthread_mutex_unlock(&rt.s.lock);
	wsman_client_free(c);
	/* The Digest challenge costs one channel, once; then one channel per request. */
	st = bridge_of(rt.session);
	assert_false(st.listening);
	assert_int_equal(st.accepted, 5);
	assert_int_equal(st.channels, 5);
	assert_int_equal(st.refused + st.failed, 0);
	assert_int_equal(apf_handshake_count(rt.session), 1);
	assert_int_equal(entries(rt.base), 0); /* nothing left behind */
	route_end(&rt);
	assert_int_equal(rt.amt.fw.sessions, 1);
	assert_int_equal(rt.amt.fw.total.channels_opened, 5);
	assert_int_equal(rt.amt.fw.total.channels_closed, 5);
	free(body);
	free(fault);
}

static void test_apf_route_wrong_password(void **state)
{
	char wrong[PASSWORD_MAX + 1];
	struct wsman_error err = {0};
	struct wsman_client *c;
	xmlDocPtr reply = NULL;
	struct route rt;
	size_t len;
	char *body = fixture("amt_general_get.xml", &len);

	(void)state;
	make_password(wrong, sizeof(wrong));
	route_start(&rt, NULL, true);
	server_answer(&rt.s, 200, body, len);
	c = apf_client(rt.session, rt.base, wrong);
	assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_AUTH);
	assert_int_equal(err.http_status, 401);
	assert_null(reply);
	assert_no_secret(&err, wrong);
	wsman_client_free(c);
	/* the session serves the next client, with the right password, on a bridge of its own */
	c = apf_client(rt.session, rt.base, rt.pass);
	if (wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err) != 0)
		fail_msg("get: %d %s", err.code, err.msg);
	xmlFreeDoc(reply);
	wsman_client_free(c);
	assert_int_equal(entries(rt.base), 0);
	pthread_mutex_lock(&rt.s.lock);
	assert_int_equal(rt.s.authenticated, 1);
	assert_false(rt.s.secret_seen);
	pthread_mutex_unlock(&rt.s.lock);
	route_end(&rt);
	assert_int_equal(rt.amt.fw.total.channels_opened, rt.amt.fw.total.channels_closed);
	free(body);
}

static void test_apf_route_refused_channel(void **state)
{
	struct apf_fw_config cfg = {.refuse_open_reason = APF_OPEN_FAILURE_RESOURCE_SHORTAGE};
	struct wsman_error err = {0};
	struct wsman_client *c;
	xmlDocPtr reply = NULL;
	struct timespec start;
	struct route rt;

	(void)state;
	route_start(&rt, &cfg, true);
	c = apf_client(rt.session, rt.base, rt.pass);
	for (int i = 0; i < 2; i++) { /* and again: the bridge goes on */
		clock_gettime(CLOCK_MONOTONIC, &start);
		assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err),
				 WSMAN_E_CONNECT);
		if (!strstr(err.msg, "AMT refused the channel: resource shortage"))
			fail_msg("unclear error: %s", err.msg);
		assert_true(elapsed_ms(&start) < 2000); /* at once, not at the request timeout */
		assert_null(reply);
	}
	wsman_client_free(c);
	assert_int_equal(bridge_of(rt.session).refused, 2);
	route_end(&rt);
	assert_int_equal(rt.amt.fw.total.channels_refused, 2);
	assert_int_equal(rt.s.connections, 0); /* the server has stopped: no lock needed */
}

/* Firmware that ends the LME session after every channel (rpc-go): each one starts over. */
static void test_apf_route_session_ends_after_each_channel(void **state)
{
	struct apf_fw_config cfg = {.close_session_after_channel_close = true};
	struct wsman_error err = {0};
	struct wsman_client *c;
	xmlDocPtr reply = NULL;
	struct route rt;
	size_t len;
	char *body = fixture("amt_general_get.xml", &len);

	(void)state;
	route_start(&rt, &cfg, true);
	server_answer(&rt.s, 200, body, len);
	c = apf_client(rt.session, rt.base, rt.pass);
	for (int i = 0; i < 3; i++) {
		if (wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err) != 0)
			fail_msg("get %d: %d %s", i, err.code, err.msg);
		xmlFreeDoc(reply);
	}
	wsman_client_free(c);
	assert_int_equal(bridge_of(rt.session).channels, 4);
	assert_int_equal(apf_handshake_count(rt.session), 4);
	route_end(&rt);
	assert_int_equal(rt.amt.fw.total.channels_opened, 4);
	free(body);
}

/*
 * The firmware resets during a request (behind it, a service that never answers, so the reset
 * is all that happens): a connect error that says what happened.
 */
static void test_apf_route_reset_mid_request(void **state)
{
	struct apf_fw_config cfg = {.reset_after_data = 1};
	struct wsman_error err = {0};
	struct wsman_client *c;
	xmlDocPtr reply = NULL;
	struct route rt;

	(void)state;
	route_start(&rt, &cfg, false);
	c = apf_client(rt.session, rt.base, rt.pass);
	assert_int_equal(wsman_get(c, AMT_URI_GENERAL_SETTINGS, &reply, &err), WSMAN_E_CONNECT);
	if (!strstr(err.msg, "APF channel to AMT port 16992 failed") || !strstr(err.msg, "reset"))
		fail_msg("unclear error: %s", err.msg);
	assert_no_secret(&err, rt.pass);
	wsman_client_free(c);
	route_end(&rt);
}

static void test_apf_route_one_client_per_session(void **state)
{
	char missing[80];
	struct wsman_target t = {.route = WSMAN_VIA_APF, .port = APF_PORT_HTTP};
	struct wsman_error err = {0};
	struct wsman_client *c, *other = NULL;
	struct route rt;

	(void)state;
	route_start(&rt, NULL, true);
	t.apf = rt.session;
	/* a socket directory that cannot be made */
	snprintf(missing, sizeof(missing), "%s/missing", rt.base);
	t.socket_dir = missing;
	assert_int_equal(wsman_client_new(&t, TEST_USER, rt.pass, &other, &err), WSMAN_E_INTERNAL);
	assert_null(other);
	assert_non_null(strstr(err.msg, "private directory"));
	/* the default place works (and is cleaned up) */
	t.socket_dir = NULL;
	assert_int_equal(wsman_client_new(&t, TEST_USER, rt.pass, &other, &err), 0);
	wsman_client_free(other);
	other = NULL;
	c = apf_client(rt.session, rt.base, rt.pass);
	t.socket_dir = rt.base;
	assert_int_equal(wsman_client_new(&t, TEST_USER, rt.pass, &other, &err), WSMAN_E_INTERNAL);
	assert_null(other);
	assert_non_null(strstr(err.msg, "another WS-Man client"));
	assert_int_equal(entries(rt.base), 1);        /* the refused one left nothing */
	assert_true(bridge_of(rt.session).listening); /* nor stopped the first one's bridge */
	wsman_client_free(c);
	assert_int_equal(entries(rt.base), 0);
	route_end(&rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_get),
		cmocka_unit_test(test_envelope_get_instance),
		cmocka_unit_test(test_envelope_invoke),
		cmocka_unit_test(test_envelope_invoke_instance),
		cmocka_unit_test(test_envelope_enumerate_pull),
		cmocka_unit_test(test_envelope_no_params),
		cmocka_unit_test(test_envelope_put),
		cmocka_unit_test(test_envelope_rejects_bad_names),
		cmocka_unit_test(test_fixtures_parse),
		cmocka_unit_test(test_general_settings_realm),
		cmocka_unit_test(test_host_based_setup_get),
		cmocka_unit_test(test_fault_fixture),
		cmocka_unit_test(test_malformed_replies),
		cmocka_unit_test(test_prefix_is_not_the_namespace),
		cmocka_unit_test(test_enumeration_replies),
		cmocka_unit_test(test_return_value_strict),
		cmocka_unit_test(test_entity_bomb),
		cmocka_unit_test(test_huge_reply),
		cmocka_unit_test(test_fault_without_subcode),
		cmocka_unit_test(test_proc_format),
		cmocka_unit_test(test_proc_root_listener),
		cmocka_unit_test(test_proc_refuses),
		cmocka_unit_test(test_proc_malformed),
		cmocka_unit_test(test_real_proc_root_listener),
		cmocka_unit_test(test_http_digest_get),
		cmocka_unit_test(test_http_digest_invoke),
		cmocka_unit_test(test_http_enumeration_never_ends),
		cmocka_unit_test(test_http_wrong_password),
		cmocka_unit_test(test_http_fault_400),
		cmocka_unit_test(test_http_other_failures),
		cmocka_unit_test(test_http_timeout),
		cmocka_unit_test(test_lms_nobody_listening),
		cmocka_unit_test(test_lms_non_root_listener),
		cmocka_unit_test(test_client_rejects_bad_targets),
		cmocka_unit_test(test_client_rejects_bad_tls_settings),
		cmocka_unit_test(test_apf_route),
		cmocka_unit_test(test_apf_route_wrong_password),
		cmocka_unit_test(test_apf_route_refused_channel),
		cmocka_unit_test(test_apf_route_session_ends_after_each_channel),
		cmocka_unit_test(test_apf_route_reset_mid_request),
		cmocka_unit_test(test_apf_route_one_client_per_session),
	};
	int r;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	xmlCleanupParser();
	return r;
}
