/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "wsman.h"

/* AMT's replies are a few kilobytes; anything near this is not AMT talking. */
#define WSMAN_REPLY_MAX          ((size_t)1024 * 1024)
#define WSMAN_DEFAULT_TIMEOUT_MS 60000
#define WSMAN_ADDR_ANONYMOUS     "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
#define WSMAN_OPERATION_TIMEOUT  "PT60S"
#define WSMAN_CONTENT_TYPE       "Content-Type: application/soap+xml; charset=utf-8"

static int fail(struct wsman_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct wsman_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap); /* a long message is cut */
	va_end(ap);
	return code;
}

static const xmlChar *xc(const char *s)
{
	return (const xmlChar *)s;
}

/* ---- Envelopes ---- */

struct envelope {
	xmlDocPtr doc;
	xmlNsPtr soap, addr, wsman;
	xmlNodePtr header, body;
};

static xmlNodePtr add_text(xmlNodePtr parent, xmlNsPtr ns, const char *name, const char *text,
			   bool must_understand, xmlNsPtr soap)
{
	/* xmlNewTextChild escapes TEXT; xmlNewChild would take it as markup. */
	xmlNodePtr n = xmlNewTextChild(parent, ns, xc(name), xc(text));

	if (n && must_understand && !xmlSetNsProp(n, soap, xc("mustUnderstand"), xc("true")))
		return NULL;
	return n;
}

static bool envelope_start(struct envelope *e, const char *action, const char *resource_uri,
			   unsigned message_id)
{
	char id[16];
	xmlNodePtr root, reply_to;

	snprintf(id, sizeof(id), "%u", message_id);
	e->doc = xmlNewDoc(xc("1.0"));
	if (!e->doc)
		return false;
	root = xmlNewDocNode(e->doc, NULL, xc("Envelope"), NULL);
	if (!root)
		return false;
	xmlDocSetRootElement(e->doc, root);
	e->soap = xmlNewNs(root, xc(WSMAN_NS_SOAP), xc("s"));
	e->addr = xmlNewNs(root, xc(WSMAN_NS_ADDR), xc("a"));
	e->wsman = xmlNewNs(root, xc(WSMAN_NS_WSMAN), xc("w"));
	if (!e->soap || !e->addr || !e->wsman)
		return false;
	xmlSetNs(root, e->soap);
	e->header = xmlNewChild(root, e->soap, xc("Header"), NULL);
	if (!e->header)
		return false;
	if (!add_text(e->header, e->addr, "Action", action, true, e->soap) ||
	    !add_text(e->header, e->addr, "To", "/wsman", true, e->soap) ||
	    !add_text(e->header, e->wsman, "ResourceURI", resource_uri, true, e->soap) ||
	    !add_text(e->header, e->addr, "MessageID", id, false, NULL))
		return false;
	reply_to = xmlNewChild(e->header, e->addr, xc("ReplyTo"), NULL);
	if (!reply_to || !add_text(reply_to, e->addr, "Address", WSMAN_ADDR_ANONYMOUS, false, NULL))
		return false;
	if (!add_text(e->header, e->wsman, "OperationTimeout", WSMAN_OPERATION_TIMEOUT, false,
		      NULL))
		return false;
	e->body = xmlNewChild(root, e->soap, xc("Body"), NULL);
	return e->body != NULL;
}

/* <w:SelectorSet><w:Selector Name="NAME">VALUE</w:Selector></w:SelectorSet> in the Header. */
static bool add_selector(struct envelope *e, const struct wsman_param *selector)
{
	xmlNodePtr set = xmlNewChild(e->header, e->wsman, xc("SelectorSet"), NULL);
	xmlNodePtr sel = set ? add_text(set, e->wsman, "Selector", selector->value, false, NULL)
			     : NULL;

	return sel && xmlSetProp(sel, xc("Name"), xc(selector->name));
}

xmlDocPtr wsman_envelope_get_instance(const char *resource_uri,
				      const struct wsman_param *selector, unsigned message_id)
{
	struct envelope e = {0};

	if (!resource_uri || (selector && (!selector->name || !selector->value)))
		return NULL;
	if (!envelope_start(&e, WSMAN_ACTION_GET, resource_uri, message_id) ||
	    (selector && !add_selector(&e, selector))) {
		xmlFreeDoc(e.doc);
		return NULL;
	}
	return e.doc;
}

xmlDocPtr wsman_envelope_get(const char *resource_uri, unsigned message_id)
{
	return wsman_envelope_get_instance(resource_uri, NULL, message_id);
}

static bool is_ncname(const char *s)
{
	return s && *s && xmlValidateNCName(xc(s), 0) == 0;
}

/*
 * An envelope whose Body holds <h:ELEMENT xmlns:h="RESOURCE_URI"> with PARAMS as children,
 * addressed to the instance SELECTOR names (NULL: the singleton).
 */
static xmlDocPtr envelope_with_body(const char *action, const char *resource_uri,
				    const struct wsman_param *selector, const char *element,
				    const struct wsman_param *params, size_t n_params,
				    unsigned message_id)
{
	struct envelope e = {0};
	xmlNodePtr call;
	xmlNsPtr h;

	if (selector && (!selector->name || !selector->value))
		return NULL;
	if (!envelope_start(&e, action, resource_uri, message_id) ||
	    (selector && !add_selector(&e, selector)))
		goto fail;
	call = xmlNewChild(e.body, NULL, xc(element), NULL);
	if (!call)
		goto fail;
	h = xmlNewNs(call, xc(resource_uri), xc("h"));
	if (!h)
		goto fail;
	xmlSetNs(call, h);
	for (size_t i = 0; i < n_params; i++) {
		if (!is_ncname(params[i].name) || !params[i].value ||
		    !xmlNewTextChild(call, h, xc(params[i].name), xc(params[i].value)))
			goto fail;
	}
	return e.doc;
fail:
	xmlFreeDoc(e.doc);
	return NULL;
}

xmlDocPtr wsman_envelope_invoke(const char *resource_uri, const char *method,
				const struct wsman_param *params, size_t n_params,
				unsigned message_id)
{
	return wsman_envelope_invoke_instance(resource_uri, NULL, method, params, n_params,
					      message_id);
}

xmlDocPtr wsman_envelope_invoke_instance(const char *resource_uri,
					 const struct wsman_param *selector, const char *method,
					 const struct wsman_param *params, size_t n_params,
					 unsigned message_id)
{
	char action[512], input[128];

	if (!resource_uri || !is_ncname(method) || (n_params > 0 && !params))
		return NULL;
	if ((size_t)snprintf(action, sizeof(action), "%s/%s", resource_uri, method) >=
		    sizeof(action) ||
	    (size_t)snprintf(input, sizeof(input), "%s_INPUT", method) >= sizeof(input))
		return NULL;
	return envelope_with_body(action, resource_uri, selector, input, params, n_params,
				  message_id);
}

xmlDocPtr wsman_envelope_put(const char *resource_uri, const char *class_name,
			     const struct wsman_param *params, size_t n_params,
			     unsigned message_id)
{
	if (!resource_uri || !is_ncname(class_name) || (n_params > 0 && !params))
		return NULL;
	return envelope_with_body(WSMAN_ACTION_PUT, resource_uri, NULL, class_name, params,
				  n_params, message_id);
}

/* <n:ELEMENT xmlns:n="WS-Enumeration"> in the Body: the caller adds its children. */
static xmlNodePtr enumeration_body(struct envelope *e, const char *element)
{
	xmlNodePtr n = xmlNewChild(e->body, NULL, xc(element), NULL);
	xmlNsPtr ns = n ? xmlNewNs(n, xc(WSMAN_NS_ENUM), xc("n")) : NULL;

	if (!ns)
		return NULL;
	xmlSetNs(n, ns);
	return n;
}

xmlDocPtr wsman_envelope_enumerate(const char *resource_uri, unsigned message_id)
{
	struct envelope e = {0};

	if (!resource_uri || !envelope_start(&e, WSMAN_ACTION_ENUMERATE, resource_uri, message_id) ||
	    !enumeration_body(&e, "Enumerate")) {
		xmlFreeDoc(e.doc);
		return NULL;
	}
	return e.doc;
}

xmlDocPtr wsman_envelope_pull(const char *resource_uri, const char *context,
			      unsigned max_elements, unsigned message_id)
{
	struct envelope e = {0};
	char max[16];
	xmlNodePtr pull;

	snprintf(max, sizeof(max), "%u", max_elements);
	if (!resource_uri || !context || !context[0] || max_elements == 0 ||
	    !envelope_start(&e, WSMAN_ACTION_PULL, resource_uri, message_id) ||
	    !(pull = enumeration_body(&e, "Pull")) ||
	    !xmlNewTextChild(pull, pull->ns, xc("EnumerationContext"), xc(context)) ||
	    !xmlNewTextChild(pull, pull->ns, xc("MaxElements"), xc(max))) {
		xmlFreeDoc(e.doc);
		return NULL;
	}
	return e.doc;
}

/* A request can carry a password digest: overwrite every text before the tree is freed. */
static void wipe_texts(xmlNodePtr n)
{
	for (; n; n = n->next) {
		if (n->type == XML_TEXT_NODE && n->content)
			OPENSSL_cleanse(n->content, (size_t)xmlStrlen(n->content));
		if (n->type == XML_ELEMENT_NODE)
			wipe_texts(n->children);
	}
}

static void free_request(xmlDocPtr doc)
{
	if (!doc)
		return;
	wipe_texts(doc->children);
	xmlFreeDoc(doc);
}

/* ---- Replies ---- */

static bool is_element(xmlNodePtr n, const char *ns, const char *local_name)
{
	return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
	       xmlStrEqual(n->ns->href, xc(ns)) && xmlStrEqual(n->name, xc(local_name));
}

static xmlNodePtr child(xmlNodePtr parent, const char *ns, const char *local_name)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
		if (is_element(n, ns, local_name))
			return n;
	return NULL;
}

static xmlNodePtr soap_body(xmlDocPtr doc)
{
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;

	if (!is_element(root, WSMAN_NS_SOAP, "Envelope"))
		return NULL;
	return child(root, WSMAN_NS_SOAP, "Body");
}

/*
 * Copy TEXT into OUT as one line: control characters become spaces, runs of white space
 * shrink to one, and the ends are trimmed. Truncates to CAP.
 */
static void one_line(char *out, size_t cap, const char *text)
{
	size_t o = 0;
	bool space = false;

	if (cap == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
		if (*p <= ' ' || *p == 0x7f) {
			space = o > 0;
			continue;
		}
		if (space && o + 1 < cap)
			out[o++] = ' ';
		space = false;
		if (o + 1 < cap)
			out[o++] = (char)*p;
	}
	out[o] = '\0';
}

/* The local part of a QName value such as "b:DestinationUnreachable". */
static const char *qname_local(const char *qname)
{
	const char *colon = strrchr(qname, ':');

	return colon ? colon + 1 : qname;
}

static void node_line(xmlNodePtr n, char *out, size_t cap)
{
	xmlChar *text = n ? xmlNodeGetContent(n) : NULL;

	one_line(out, cap, (const char *)text);
	xmlFree(text);
}

/* The most specific fault code: the innermost Subcode's Value, else Code/Value. */
static void fault_code(xmlNodePtr fault, char *out, size_t cap)
{
	xmlNodePtr code = child(fault, WSMAN_NS_SOAP, "Code");
	xmlNodePtr value = child(code, WSMAN_NS_SOAP, "Value");
	char qname[128];

	for (xmlNodePtr sub = child(code, WSMAN_NS_SOAP, "Subcode"); sub;
	     sub = child(sub, WSMAN_NS_SOAP, "Subcode")) {
		xmlNodePtr v = child(sub, WSMAN_NS_SOAP, "Value");

		if (v)
			value = v;
	}
	node_line(value, qname, sizeof(qname));
	snprintf(out, cap, "%s", qname_local(qname));
}

static int fault_error(xmlNodePtr fault, struct wsman_error *err)
{
	char code[128], reason[200];

	fault_code(fault, code, sizeof(code));
	node_line(child(child(fault, WSMAN_NS_SOAP, "Reason"), WSMAN_NS_SOAP, "Text"), reason,
		  sizeof(reason));
	return fail(err, WSMAN_E_FAULT, "AMT answered a SOAP fault %s: %s",
		    code[0] ? code : "(no code)", reason[0] ? reason : "(no reason given)");
}

/*
 * SOAP 1.2 forbids a document type declaration, and refusing it as soon as the parser meets
 * it means no entity is ever declared, so none can be expanded.
 */
static void refuse_dtd(void *ctx, const xmlChar *name, const xmlChar *external_id,
		       const xmlChar *system_id)
{
	(void)name;
	(void)external_id;
	(void)system_id;
	xmlStopParser((xmlParserCtxtPtr)ctx);
}

static int parse_xml(const char *body, size_t len, xmlDocPtr *out, struct wsman_error *err)
{
	xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
	const xmlError *e;
	char why[128];
	xmlDocPtr doc;
	int r = 0;

	if (!ctxt || !ctxt->sax) {
		xmlFreeParserCtxt(ctxt);
		return fail(err, WSMAN_E_INTERNAL, "out of memory parsing AMT's reply");
	}
	ctxt->sax->internalSubset = refuse_dtd;
	ctxt->sax->externalSubset = NULL;
	ctxt->sax->entityDecl = NULL;
	doc = xmlCtxtReadMemory(ctxt, body, (int)len, NULL, NULL,
				XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
					XML_PARSE_NOCDATA);
	e = xmlCtxtGetLastError(ctxt);
	/* A stopped parser can still hand back a (rootless) document: the stop decides. */
	if (ctxt->errNo == XML_ERR_USER_STOP || (doc && (doc->intSubset || doc->extSubset)))
		r = fail(err, WSMAN_E_PARSE,
			 "AMT's reply carries a document type declaration, which SOAP forbids");
	else if (!doc) {
		one_line(why, sizeof(why), e ? e->message : NULL);
		r = fail(err, WSMAN_E_PARSE, "AMT's reply is not well-formed XML (line %d: %s)",
			 e ? e->line : 0, why[0] ? why : "no detail");
	}
	if (r != 0) {
		xmlFreeDoc(doc);
		doc = NULL;
	}
	xmlFreeParserCtxt(ctxt);
	*out = doc;
	return r;
}

int wsman_parse_reply(const char *body, size_t len, xmlDocPtr *doc, struct wsman_error *err)
{
	struct wsman_error dummy;
	xmlNodePtr soap, fault;
	xmlDocPtr d = NULL;
	int r;

	if (!err)
		err = &dummy;
	if (!doc)
		return fail(err, WSMAN_E_INTERNAL, "wsman_parse_reply: no output");
	*doc = NULL;
	if (!body || len == 0)
		return fail(err, WSMAN_E_PARSE, "AMT's reply is empty");
	if (len > WSMAN_REPLY_MAX)
		return fail(err, WSMAN_E_PARSE, "AMT's reply of %zu bytes exceeds the %zu-byte limit",
			    len, WSMAN_REPLY_MAX);
	r = parse_xml(body, len, &d, err);
	if (r != 0)
		return r;
	soap = soap_body(d);
	if (!soap) {
		xmlFreeDoc(d);
		return fail(err, WSMAN_E_PARSE,
			    "AMT's reply is not a SOAP 1.2 envelope with a Body");
	}
	fault = child(soap, WSMAN_NS_SOAP, "Fault");
	if (fault) {
		r = fault_error(fault, err);
		xmlFreeDoc(d);
		return r;
	}
	*doc = d;
	return 0;
}

static xmlNodePtr find_local(xmlNodePtr n, const char *local_name)
{
	for (; n; n = n->next) {
		xmlNodePtr found;

		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (xmlStrEqual(n->name, xc(local_name)))
			return n;
		found = find_local(n->children, local_name);
		if (found)
			return found;
	}
	return NULL;
}

static bool is_xml_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* TEXT without the white space around it: its first character, and its length in *LEN. */
static const char *trim(const char *text, size_t *len)
{
	size_t n;

	while (is_xml_blank(*text))
		text++;
	n = strlen(text);
	while (n > 0 && is_xml_blank(text[n - 1]))
		n--;
	*len = n;
	return text;
}

int wsman_body_text(xmlDocPtr doc, const char *local_name, char *out, size_t cap)
{
	return wsman_node_text(soap_body(doc), local_name, out, cap);
}

/* N's text, trimmed, into OUT; WSMAN_E_PARSE when there is no N or it does not fit CAP. */
static int element_text(xmlNodePtr n, char *out, size_t cap)
{
	xmlChar *content;
	const char *text;
	size_t len;
	int r = WSMAN_E_PARSE;

	if (!n || !out || cap == 0)
		return WSMAN_E_PARSE;
	content = xmlNodeGetContent(n);
	if (!content)
		return WSMAN_E_PARSE;
	text = trim((const char *)content, &len);
	if (len < cap) {
		memcpy(out, text, len);
		out[len] = '\0';
		r = 0;
	}
	xmlFree(content);
	return r;
}

int wsman_node_text(xmlNodePtr parent, const char *local_name, char *out, size_t cap)
{
	return element_text(parent && local_name ? find_local(parent->children, local_name) : NULL,
			    out, cap);
}

int wsman_enumeration_context(xmlDocPtr doc, char *out, size_t cap)
{
	xmlNodePtr body = soap_body(doc);
	xmlNodePtr resp = child(body, WSMAN_NS_ENUM, "EnumerateResponse");

	if (!resp)
		resp = child(body, WSMAN_NS_ENUM, "PullResponse");
	if (element_text(child(resp, WSMAN_NS_ENUM, "EnumerationContext"), out, cap) != 0 ||
	    !out[0])
		return WSMAN_E_PARSE;
	return 0;
}

int wsman_pull_items(xmlDocPtr doc, wsman_item_fn each, void *ctx, bool *end)
{
	xmlNodePtr resp = child(soap_body(doc), WSMAN_NS_ENUM, "PullResponse");
	xmlNodePtr items = child(resp, WSMAN_NS_ENUM, "Items");

	if (!resp || !each || !end)
		return WSMAN_E_PARSE;
	for (xmlNodePtr item = items ? items->children : NULL; item; item = item->next)
		if (item->type == XML_ELEMENT_NODE)
			each(item, ctx);
	*end = child(resp, WSMAN_NS_ENUM, "EndOfSequence") != NULL;
	return 0;
}

int wsman_return_value(xmlDocPtr doc, unsigned *rv)
{
	char text[16];
	unsigned long v = 0;

	if (!rv || wsman_body_text(doc, "ReturnValue", text, sizeof(text)) != 0 || !text[0] ||
	    strlen(text) > 10)
		return WSMAN_E_PARSE;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return WSMAN_E_PARSE;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > UINT_MAX)
		return WSMAN_E_PARSE;
	*rv = (unsigned)v;
	return 0;
}

/* ---- The LMS listener check ---- */

struct listener_scan {
	uint16_t port;
	unsigned root;    /* listeners that would take a connection to 127.0.0.1:port, uid 0 */
	unsigned foreign; /* the same, any other uid */
};

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Exactly N (1..8) hex digits at S. */
static bool parse_hex(const char *s, size_t n, uint32_t *out)
{
	uint32_t v = 0;

	for (size_t i = 0; i < n; i++) {
		int d = hex_digit(s[i]);

		if (d < 0)
			return false;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return true;
}

/* The next field of a /proc/net/tcp line: a run of non-blanks. */
static bool next_field(const char **p, const char **start, size_t *len)
{
	const char *s = *p;

	while (*s == ' ')
		s++;
	*start = s;
	while (*s && *s != ' ' && *s != '\n')
		s++;
	*len = (size_t)(s - *start);
	*p = s;
	return *len > 0;
}

/*
 * "0100007F:4220" (IPv4) or 32 hex digits and a port (IPv6). The kernel prints each 32-bit
 * word of the address as a native integer, so copying the words back in native order gives
 * the address bytes on any endianness.
 */
static bool parse_local_address(const char *s, size_t len, bool v6, uint8_t addr[16],
				uint16_t *port)
{
	size_t words = v6 ? 4 : 1;
	uint32_t w, p;

	if (len != words * 8 + 5 || s[words * 8] != ':')
		return false;
	for (size_t i = 0; i < words; i++) {
		if (!parse_hex(s + 8 * i, 8, &w))
			return false;
		memcpy(addr + 4 * i, &w, 4);
	}
	if (!parse_hex(s + words * 8 + 1, 4, &p))
		return false;
	*port = (uint16_t)p;
	return true;
}

static bool parse_uid(const char *s, size_t len, uint32_t *uid)
{
	uint64_t v = 0;

	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*uid = (uint32_t)v;
	return true;
}

/* Would a socket bound here receive a TCP connection made to 127.0.0.1? */
static bool takes_loopback_v4(const uint8_t addr[16], bool v6)
{
	static const uint8_t loopback[4] = {127, 0, 0, 1};
	static const uint8_t any[4] = {0, 0, 0, 0};
	static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t zero16[16] = {0};

	if (!v6)
		return memcmp(addr, loopback, 4) == 0 || memcmp(addr, any, 4) == 0;
	/* "::" may be dual-stack; /proc does not say whether it is IPV6_V6ONLY, so count it. */
	if (memcmp(addr, zero16, 16) == 0)
		return true;
	return memcmp(addr, mapped_prefix, 12) == 0 &&
	       (memcmp(addr + 12, loopback, 4) == 0 || memcmp(addr + 12, any, 4) == 0);
}

#define TCP_LISTEN 0x0A

static bool scan_line(const char *line, bool v6, struct listener_scan *scan)
{
	const char *p = line, *f[8];
	size_t len[8];
	uint8_t addr[16];
	uint16_t port;
	uint32_t st, uid;

	/* sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid */
	for (int i = 0; i < 8; i++)
		if (!next_field(&p, &f[i], &len[i]))
			return false;
	if (len[0] < 2 || f[0][len[0] - 1] != ':')
		return false;
	if (!parse_local_address(f[1], len[1], v6, addr, &port))
		return false;
	if (len[3] != 2 || !parse_hex(f[3], 2, &st))
		return false;
	if (!parse_uid(f[7], len[7], &uid))
		return false;
	if (st != TCP_LISTEN || port != scan->port || !takes_loopback_v4(addr, v6))
		return true;
	if (uid == 0)
		scan->root++;
	else
		scan->foreign++;
	return true;
}

/* 0, -ENOENT when the file does not exist, -EINVAL for anything unexpected in it. */
static int scan_file(const char *path, bool v6, struct listener_scan *scan)
{
	char line[512];
	unsigned long n = 0;
	int r = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return errno == ENOENT ? -ENOENT : -EINVAL;
	while (r == 0 && fgets(line, sizeof(line), f)) {
		if (!strchr(line, '\n'))
			r = -EINVAL; /* longer than any line the kernel writes */
		else if (n++ == 0)
			r = strstr(line, "local_address") ? 0 : -EINVAL;
		else
			r = scan_line(line, v6, scan) ? 0 : -EINVAL;
	}
	if (r == 0 && (ferror(f) || n == 0))
		r = -EINVAL;
	(void)fclose(f); /* read only */
	return r;
}

bool wsman_lms_listener_is_root(const char *proc_root, uint16_t port)
{
	struct listener_scan scan = {.port = port};
	char path[PATH_MAX];
	int r;

	if (!proc_root)
		proc_root = "/proc";
	if ((size_t)snprintf(path, sizeof(path), "%s/net/tcp", proc_root) >= sizeof(path) ||
	    scan_file(path, false, &scan) != 0)
		return false;
	if ((size_t)snprintf(path, sizeof(path), "%s/net/tcp6", proc_root) >= sizeof(path))
		return false;
	r = scan_file(path, true, &scan);
	if (r != 0 && r != -ENOENT) /* no tcp6 file: IPv6 is off, nothing listens there */
		return false;
	return scan.root > 0 && scan.foreign == 0;
}

/* ---- The client ---- */

struct reply_buf {
	char *data;
	size_t len, cap;
	bool too_big;
};

struct wsman_client {
	enum wsman_route route;
	struct apf_session *apf;
	uint16_t port;
	bool tls;
	int timeout_ms;
	char *ca_file;
	uint8_t pin[WSMAN_PIN_MAX];
	size_t pin_len;
	/* mutual TLS: references of the caller's identity */
	X509 *client_cert;
	EVP_PKEY *client_key;
	STACK_OF(X509) *client_chain;
	char *user;
	char *pass;
	CURL *curl;
	struct curl_slist *headers;
	unsigned next_message_id;
	/* Why the LMS socket callback could not open a connection. */
	int open_code;
	char open_msg[200];
	char curl_msg[CURL_ERROR_SIZE];
	struct reply_buf reply;
	/* APF route: the session's bridge, listening in a directory of this client's own */
	bool bridging;
	char bridge_dir[PATH_MAX];
	char bridge_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct apf_bridge_status before; /* the bridge's counters when the transfer began */
};

static void open_failure(struct wsman_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void open_failure(struct wsman_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	if (c->open_code != 0)
		return; /* the first failure explains the rest */
	c->open_code = code;
	va_start(ap, fmt);
	(void)vsnprintf(c->open_msg, sizeof(c->open_msg), fmt, ap);
	va_end(ap);
}

static size_t collect_reply(char *data, size_t size, size_t nmemb, void *userp)
{
	struct reply_buf *b = userp;
	size_t n = size * nmemb;

	if (n > WSMAN_REPLY_MAX - b->len) {
		b->too_big = true;
		return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 8192;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return 0;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static bool is_loopback_target(const struct curl_sockaddr *addr, uint16_t port)
{
	struct sockaddr_in sin;

	if (addr->family != AF_INET || addr->addrlen < sizeof(sin))
		return false;
	memcpy(&sin, &addr->addr, sizeof(sin));
	return sin.sin_addr.s_addr == htonl(INADDR_LOOPBACK) && ntohs(sin.sin_port) == port;
}

/*
 * LMS: the check sits right before each connection is made (the Digest retry included), so a
 * listener that changed hands since the client was created is still caught.
 */
static curl_socket_t open_lms_socket(void *clientp, curlsocktype purpose,
				     struct curl_sockaddr *addr)
{
	struct wsman_client *c = clientp;
	int fd;

	if (purpose != CURLSOCKTYPE_IPCXN || !is_loopback_target(addr, c->port)) {
		open_failure(c, WSMAN_E_INTERNAL, "LMS route: refusing a connection that is not "
						    "to 127.0.0.1:%u",
			       c->port);
		return CURL_SOCKET_BAD;
	}
	if (!wsman_lms_listener_is_root("/proc", c->port)) {
		open_failure(c, WSMAN_E_CONNECT,
			       "LMS route refused: the listener on 127.0.0.1:%u is not owned by root "
			       "(or there is none); not sending the admin digest there",
			       c->port);
		return CURL_SOCKET_BAD;
	}
	fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
	if (fd < 0) {
		open_failure(c, WSMAN_E_CONNECT, "cannot create a socket for 127.0.0.1:%u: %s",
			       c->port, strerror(errno));
		return CURL_SOCKET_BAD;
	}
	return fd; /* libcurl owns it now */
}

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (curl_easy_setopt(c->curl, opt, val) != CURLE_OK)                               \
			return false;                                                              \
	} while (0)

/* The pin: AMT's certificate is the one StartConfigurationHBased named, chain or no chain. */
static int verify_pin(X509_STORE_CTX *store, void *arg)
{
	const struct wsman_client *c = arg;
	X509 *peer = X509_STORE_CTX_get0_cert(store);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	const EVP_MD *alg = c->pin_len == 48 ? EVP_sha384() : EVP_sha256();

	if (peer && X509_digest(peer, alg, md, &n) == 1 && n == c->pin_len &&
	    CRYPTO_memcmp(md, c->pin, n) == 0) {
		X509_STORE_CTX_set_error(store, X509_V_OK);
		return 1;
	}
	X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
	return 0;
}

/*
 * libcurl hands each connection's SSL_CTX (OpenSSL) here before the handshake: the client
 * certificate and key are set from memory (no key file), and the pin replaces the chain check.
 */
static CURLcode tls_context(CURL *curl, void *ssl_ctx, void *arg)
{
	struct wsman_client *c = arg;
	SSL_CTX *ctx = ssl_ctx;

	(void)curl;
	if (c->client_cert) {
		if (SSL_CTX_use_certificate(ctx, c->client_cert) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, c->client_key) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1)
			return CURLE_SSL_CERTPROBLEM;
		for (int i = 0; c->client_chain && i < sk_X509_num(c->client_chain); i++)
			if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(c->client_chain, i)) != 1)
				return CURLE_SSL_CERTPROBLEM;
	}
	if (c->pin_len > 0) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_cert_verify_callback(ctx, verify_pin, c);
	}
	return CURLE_OK;
}

static bool configure_tls(struct wsman_client *c)
{
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	/*
	 * AMT's certificate names AMT ("AMT RCFG" or its FQDN), never 127.0.0.1, so the host name
	 * cannot be checked; the trust comes from the pin or the CA alone. Without either, the TLS
	 * that AMT enforces on its local ports is taken unverified: the bytes stay on this machine
	 * (an APF channel over MEI, or a root-owned LMS listener on loopback).
	 */
	SET(CURLOPT_SSL_VERIFYHOST, 0L);
	if (c->client_cert || c->pin_len > 0) {
		/* needs libcurl on OpenSSL: setopt fails (CURLE_NOT_BUILT_IN) otherwise */
		SET(CURLOPT_SSL_CTX_FUNCTION, tls_context);
		SET(CURLOPT_SSL_CTX_DATA, c);
		/* a resumed session would skip the pin */
		SET(CURLOPT_SSL_SESSIONID_CACHE, 0L);
	}
	if (c->pin_len > 0) {
		SET(CURLOPT_SSL_VERIFYPEER, 1L);
		SET(CURLOPT_CAINFO, (char *)NULL);
		SET(CURLOPT_CAPATH, (char *)NULL);
	} else if (c->ca_file) {
		SET(CURLOPT_SSL_VERIFYPEER, 1L);
		SET(CURLOPT_CAINFO, c->ca_file);
		SET(CURLOPT_CAPATH, (char *)NULL); /* the system's CAs do not vouch for AMT */
	} else {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
	}
	return true;
}

static bool configure(struct wsman_client *c)
{
	char url[64];
	long timeout = c->timeout_ms;

	/* Over APF the host part only names the Host header (rpc-go's is "localhost" too). */
	snprintf(url, sizeof(url), "%s://%s:%u/wsman", c->tls ? "https" : "http",
		 c->route == WSMAN_VIA_APF ? "localhost" : "127.0.0.1", c->port);
	c->headers = curl_slist_append(NULL, WSMAN_CONTENT_TYPE);
	if (!c->headers)
		return false;
	/* "Expect: 100-continue" would only cost AMT a round trip. */
	if (!curl_slist_append(c->headers, "Expect:"))
		return false;
	SET(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
	SET(CURLOPT_PROTOCOLS_STR, c->tls ? "https" : "http");
#else /* Ubuntu 22.04 has 7.81 */
	SET(CURLOPT_PROTOCOLS, c->tls ? (long)CURLPROTO_HTTPS : (long)CURLPROTO_HTTP);
#endif
	SET(CURLOPT_PROXY, ""); /* http_proxy in the environment must not see the digest */
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_VERBOSE, 0L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_HTTPHEADER, c->headers);
	SET(CURLOPT_USERAGENT, "amt-enlist/" AMT_ENLIST_VERSION);
	SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_DIGEST);
	SET(CURLOPT_USERNAME, c->user);
	SET(CURLOPT_PASSWORD, c->pass);
	SET(CURLOPT_TIMEOUT_MS, timeout);
	SET(CURLOPT_CONNECTTIMEOUT_MS, timeout);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)WSMAN_REPLY_MAX);
	SET(CURLOPT_WRITEFUNCTION, collect_reply);
	SET(CURLOPT_WRITEDATA, &c->reply);
	SET(CURLOPT_ERRORBUFFER, c->curl_msg);
	/*
	 * One connection per request: over APF a connection is a channel, and AMT frees a channel
	 * slot only after it is closed. The handle (and its Digest nonce) is kept, so later
	 * requests authenticate without another 401.
	 */
	SET(CURLOPT_FORBID_REUSE, 1L);
	if (c->route == WSMAN_VIA_APF) {
		/* each connection to the bridge's socket is carried by a channel of its own */
		SET(CURLOPT_UNIX_SOCKET_PATH, c->bridge_path);
	} else {
		/* (with a Unix socket path this would make libcurl skip the socket's address) */
		SET(CURLOPT_IPRESOLVE, (long)CURL_IPRESOLVE_V4);
		SET(CURLOPT_OPENSOCKETFUNCTION, open_lms_socket);
		SET(CURLOPT_OPENSOCKETDATA, c);
	}
	return !c->tls || configure_tls(c);
}

#undef SET

static bool is_lms_host(const char *host)
{
	return !host || strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0;
}

static void wipe_string(char *s)
{
	if (s)
		OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* Where the client's private directory goes when the target does not say. */
static const char *default_socket_dir(void)
{
	const char *tmp;

	if (access("/run", W_OK | X_OK) == 0)
		return "/run";
	tmp = secure_getenv("TMPDIR");
	return tmp && tmp[0] == '/' ? tmp : "/tmp";
}

/* A private directory (mkdtemp: 0700, ours) and the session's bridge listening in it. */
static int bridge_open(struct wsman_client *c, const char *base, struct wsman_error *err)
{
	int r;

	if (!base)
		base = default_socket_dir();
	if ((size_t)snprintf(c->bridge_dir, sizeof(c->bridge_dir), "%s/amt-enlist.XXXXXX",
			     base) >= sizeof(c->bridge_dir)) {
		c->bridge_dir[0] = '\0';
		return fail(err, WSMAN_E_INTERNAL, "the socket directory's name is too long");
	}
	if (!mkdtemp(c->bridge_dir)) {
		int e = errno;

		c->bridge_dir[0] = '\0';
		return fail(err, WSMAN_E_INTERNAL, "cannot make a private directory in %.100s: %s",
			    base, strerror(e));
	}
	r = apf_bridge_listen(c->apf, c->port, c->bridge_dir, c->bridge_path,
			      sizeof(c->bridge_path));
	if (r == MEI_E_BUSY)
		return fail(err, WSMAN_E_INTERNAL,
			    "the APF session already carries another WS-Man client");
	if (r != 0)
		return fail(err, WSMAN_E_INTERNAL, "cannot set up the APF bridge: %.180s",
			    apf_last_error(c->apf));
	c->bridging = true;
	return 0;
}

/* Stops the bridge (its channel closes, bounded), then removes the directory: nothing is left. */
static void bridge_close(struct wsman_client *c)
{
	if (c->bridging)
		apf_bridge_stop(c->apf);
	c->bridging = false;
	if (c->bridge_dir[0])
		(void)rmdir(c->bridge_dir);
	c->bridge_dir[0] = '\0';
}

/* References of the caller's certificate, key and chain, dropped by wsman_client_free. */
static bool take_identity(struct wsman_client *c, const struct wsman_tls_identity *id)
{
	if (!id->cert || !id->key || X509_up_ref(id->cert) != 1)
		return false;
	c->client_cert = id->cert;
	if (EVP_PKEY_up_ref(id->key) != 1)
		return false;
	c->client_key = id->key;
	if (id->chain && !(c->client_chain = X509_chain_up_ref(id->chain)))
		return false;
	return true;
}

int wsman_client_new(const struct wsman_target *t, const char *user, const char *pass,
		     struct wsman_client **out, struct wsman_error *err)
{
	struct wsman_error dummy;
	struct wsman_client *c;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (!out)
		return fail(err, WSMAN_E_INTERNAL, "wsman_client_new: no output");
	*out = NULL;
	if (!t || !user || !pass || t->port == 0)
		return fail(err, WSMAN_E_INTERNAL, "wsman_client_new: incomplete target");
	if (t->route == WSMAN_VIA_APF && !t->apf)
		return fail(err, WSMAN_E_INTERNAL, "WS-Man over APF needs an APF session");
	if (t->route == WSMAN_VIA_LMS && !is_lms_host(t->lms_host))
		return fail(err, WSMAN_E_INTERNAL,
			    "WS-Man over LMS goes to 127.0.0.1 only, not to %.64s", t->lms_host);
	c = calloc(1, sizeof(*c));
	if (!c)
		return fail(err, WSMAN_E_INTERNAL, "out of memory");
	c->route = t->route;
	c->apf = t->apf;
	c->port = t->port;
	c->tls = t->tls;
	c->timeout_ms = t->timeout_ms > 0 ? t->timeout_ms : WSMAN_DEFAULT_TIMEOUT_MS;
	c->next_message_id = 1;
	c->user = strdup(user);
	c->pass = strdup(pass);
	c->ca_file = t->ca_file ? strdup(t->ca_file) : NULL;
	if (!c->user || !c->pass || (t->ca_file && !c->ca_file)) {
		wsman_client_free(c);
		return fail(err, WSMAN_E_INTERNAL, "out of memory");
	}
	if (t->pin_len > 0) {
		if (t->pin_len != 32 && t->pin_len != 48) {
			wsman_client_free(c);
			return fail(err, WSMAN_E_INTERNAL,
				    "a certificate pin is a SHA-256 or a SHA-384, not %zu bytes",
				    t->pin_len);
		}
		memcpy(c->pin, t->pin, t->pin_len);
		c->pin_len = t->pin_len;
	}
	if (t->identity && !take_identity(c, t->identity)) {
		wsman_client_free(c);
		return fail(err, WSMAN_E_INTERNAL, "wsman_client_new: incomplete client identity");
	}
	if (c->route == WSMAN_VIA_APF && bridge_open(c, t->socket_dir, err) != 0) {
		wsman_client_free(c);
		return err->code;
	}
	c->curl = curl_easy_init();
	if (!c->curl || !configure(c)) {
		wsman_client_free(c);
		return fail(err, WSMAN_E_INTERNAL, "cannot set up libcurl for WS-Man");
	}
	*out = c;
	return 0;
}

void wsman_client_free(struct wsman_client *c)
{
	if (!c)
		return;
	/* Cleanup closes any open connection before the bridge that carries it is stopped. */
	if (c->curl)
		curl_easy_cleanup(c->curl);
	bridge_close(c);
	curl_slist_free_all(c->headers);
	wipe_string(c->pass);
	free(c->user);
	free(c->ca_file);
	X509_free(c->client_cert);
	EVP_PKEY_free(c->client_key);
	sk_X509_pop_free(c->client_chain, X509_free);
	free(c->reply.data);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

static bool is_tls_failure(CURLcode cc)
{
	switch (cc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
		return true;
	default:
		return false;
	}
}

static const char *curl_reason(const struct wsman_client *c, CURLcode cc)
{
	return c->curl_msg[0] ? c->curl_msg : curl_easy_strerror(cc);
}

/*
 * The bridge took a connection of this transfer and the last one it took ended badly: that
 * explains the transfer's failure better than libcurl can (it saw end of file or a reset).
 */
static int bridge_failure(struct wsman_client *c, struct wsman_error *err)
{
	struct apf_bridge_status st;

	if (!c->bridging)
		return 0;
	apf_bridge_status(c->apf, &st);
	if (st.accepted == c->before.accepted || st.completed != st.accepted ||
	    st.last_result == 0)
		return 0;
	if (st.last_result == MEI_E_REFUSED)
		return fail(err, WSMAN_E_CONNECT, "AMT refused the channel: %s (reason %u, port %u)",
			    apf_open_failure_name(st.last_refusal), st.last_refusal, c->port);
	return fail(err, WSMAN_E_CONNECT, "the APF channel to AMT port %u failed: %.180s",
		    c->port, st.last_error[0] ? st.last_error : mei_strerror(st.last_result));
}

static int transfer_failure(struct wsman_client *c, CURLcode cc, struct wsman_error *err)
{
	int r;

	if (c->open_code != 0)
		return fail(err, c->open_code, "%s", c->open_msg);
	r = bridge_failure(c, err);
	if (r != 0)
		return r;
	if (c->reply.too_big || cc == CURLE_FILESIZE_EXCEEDED)
		return fail(err, WSMAN_E_PARSE, "AMT's reply exceeds the %zu-byte limit",
			    WSMAN_REPLY_MAX);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return fail(err, WSMAN_E_TIMEOUT, "no reply from AMT's port %u within %d ms",
			    c->port, c->timeout_ms);
	if (is_tls_failure(cc))
		return fail(err, WSMAN_E_TLS, "TLS with AMT's port %u failed: %.150s", c->port,
			    curl_reason(c, cc));
	if (cc == CURLE_OUT_OF_MEMORY)
		return fail(err, WSMAN_E_INTERNAL, "out of memory talking to AMT");
	return fail(err, WSMAN_E_CONNECT, "WS-Man exchange with AMT's port %u failed: %.150s",
		    c->port, curl_reason(c, cc));
}

/* A reply that is not 200: a SOAP fault inside explains it better than the status. */
static int status_failure(struct wsman_client *c, long status, struct wsman_error *err)
{
	xmlDocPtr doc = NULL;

	if (status == 401)
		return fail(err, WSMAN_E_AUTH, "AMT refused the credentials of user %.40s (HTTP 401)",
			    c->user);
	if (c->reply.len > 0 &&
	    wsman_parse_reply(c->reply.data, c->reply.len, &doc, err) == WSMAN_E_FAULT)
		return WSMAN_E_FAULT;
	xmlFreeDoc(doc);
	return fail(err, WSMAN_E_HTTP, "AMT answered HTTP %ld on port %u", status, c->port);
}

static int transfer(struct wsman_client *c, xmlDocPtr request, xmlDocPtr *reply,
		    struct wsman_error *err)
{
	xmlChar *body = NULL;
	int body_len = 0;
	long status = 0;
	CURLcode cc;

	xmlDocDumpMemoryEnc(request, &body, &body_len, "UTF-8");
	if (!body || body_len <= 0) {
		xmlFree(body);
		return fail(err, WSMAN_E_INTERNAL, "cannot serialise the WS-Man request");
	}
	c->reply.len = 0;
	c->reply.too_big = false;
	c->open_code = 0;
	c->curl_msg[0] = '\0';
	if (c->bridging)
		apf_bridge_status(c->apf, &c->before);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, (const char *)body);
	cc = curl_easy_perform(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, (const char *)NULL);
	OPENSSL_cleanse(body, (size_t)body_len);
	xmlFree(body);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	err->http_status = status;
	if (cc != CURLE_OK)
		return transfer_failure(c, cc, err);
	if (status != 200)
		return status_failure(c, status, err);
	return wsman_parse_reply(c->reply.data, c->reply.len, reply, err);
}

static int request(struct wsman_client *c, xmlDocPtr doc, xmlDocPtr *reply,
		   struct wsman_error *err)
{
	int r;

	if (!doc) {
		if (reply)
			*reply = NULL;
		return fail(err, WSMAN_E_INTERNAL, "cannot build the WS-Man request");
	}
	r = transfer(c, doc, reply, err);
	free_request(doc);
	return r;
}

int wsman_get_instance(struct wsman_client *c, const char *resource_uri,
		       const struct wsman_param *selector, xmlDocPtr *reply,
		       struct wsman_error *err)
{
	struct wsman_error dummy;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (!c || !reply)
		return fail(err, WSMAN_E_INTERNAL, "wsman_get: no client or no output");
	*reply = NULL;
	return request(c, wsman_envelope_get_instance(resource_uri, selector, c->next_message_id++),
		       reply, err);
}

int wsman_get(struct wsman_client *c, const char *resource_uri, xmlDocPtr *reply,
	      struct wsman_error *err)
{
	return wsman_get_instance(c, resource_uri, NULL, reply, err);
}

/* One Enumerate, then Pulls until EndOfSequence (at most WSMAN_PULLS_MAX of them). */
int wsman_enumerate(struct wsman_client *c, const char *resource_uri, wsman_item_fn each,
		    void *ctx, struct wsman_error *err)
{
	struct wsman_error dummy;
	xmlDocPtr doc = NULL;
	char context[WSMAN_CONTEXT_MAX];
	bool end = false;
	int r;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (!c || !each)
		return fail(err, WSMAN_E_INTERNAL, "wsman_enumerate: no client or no callback");
	r = request(c, wsman_envelope_enumerate(resource_uri, c->next_message_id++), &doc, err);
	if (r != 0)
		return r;
	r = wsman_enumeration_context(doc, context, sizeof(context));
	xmlFreeDoc(doc);
	if (r != 0)
		return fail(err, WSMAN_E_PARSE, "AMT's EnumerateResponse has no EnumerationContext");
	for (unsigned pulls = 0; !end; pulls++) {
		if (pulls == WSMAN_PULLS_MAX)
			return fail(err, WSMAN_E_PARSE, "AMT's enumeration did not end after %u Pulls",
				    WSMAN_PULLS_MAX);
		r = request(c,
			    wsman_envelope_pull(resource_uri, context, WSMAN_PULL_ELEMENTS,
						c->next_message_id++),
			    &doc, err);
		if (r != 0)
			return r;
		r = wsman_pull_items(doc, each, ctx, &end);
		/* A PullResponse may name a new context for the next Pull; else the old one holds. */
		if (r == 0 && !end)
			(void)wsman_enumeration_context(doc, context, sizeof(context));
		xmlFreeDoc(doc);
		if (r != 0)
			return fail(err, WSMAN_E_PARSE, "AMT's reply to Pull is not a PullResponse");
	}
	return 0;
}

int wsman_put(struct wsman_client *c, const char *resource_uri, const char *class_name,
	      const struct wsman_param *params, size_t n_params, xmlDocPtr *reply,
	      struct wsman_error *err)
{
	struct wsman_error dummy;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (!c || !reply)
		return fail(err, WSMAN_E_INTERNAL, "wsman_put: no client or no output");
	*reply = NULL;
	return request(c,
		       wsman_envelope_put(resource_uri, class_name, params, n_params,
					  c->next_message_id++),
		       reply, err);
}

int wsman_invoke(struct wsman_client *c, const char *resource_uri, const char *method,
		 const struct wsman_param *params, size_t n_params, xmlDocPtr *reply,
		 struct wsman_error *err)
{
	return wsman_invoke_instance(c, resource_uri, NULL, method, params, n_params, reply, err);
}

int wsman_invoke_instance(struct wsman_client *c, const char *resource_uri,
			  const struct wsman_param *selector, const char *method,
			  const struct wsman_param *params, size_t n_params, xmlDocPtr *reply,
			  struct wsman_error *err)
{
	struct wsman_error dummy;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (!c || !reply)
		return fail(err, WSMAN_E_INTERNAL, "wsman_invoke: no client or no output");
	*reply = NULL;
	return request(c,
		       wsman_envelope_invoke_instance(resource_uri, selector, method, params,
						      n_params, c->next_message_id++),
		       reply, err);
}
