/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AMT's WS-Man server as the emulator plays it: HTTP by libmicrohttpd, one daemon for the APF
 * channels (each channel's socket goes in with MHD_add_connection; TLS on machines that enforce
 * it on local ports) and, when asked, one listening on 127.0.0.1 as LMS would. Both answer
 * POST /wsman with HTTP Digest auth (MD5, qop=auth):
 *   - the local system account (GetLocalSystemAccount's user and password) only while the
 *     machine is in pre-provisioning;
 *   - "admin" with the HA1 that Setup stored (or the profile's admin_password).
 * The SOAP request is parsed with libxml2 (namespaces honoured) and answered in the shapes AMT
 * sends (tests/fixtures/wsman/): Transfer Get of AMT_GeneralSettings,
 * IPS_HostBasedSetupService, AMT_SetupAndConfigurationService and IPS_OptInService (and Put of
 * the last); IPS_HostBasedSetupService.Setup, AdminSetup, AddNextCertInChain and
 * UpgradeClientToAdmin; AMT_AuthorizationService.SetAdminAclEntryEx;
 * AMT_SetupAndConfigurationService.SetMEBxPassword, CommitChanges and Unprovision;
 * AMT_SystemPowerScheme's Enumerate, Pull and SetPowerScheme (the profile's power packages;
 * GetCurrentPowerPolicy follows). Anything else
 * is a SOAP fault with HTTP 400. State changes go through machine.c and acm_fw.c under m->lock,
 * so AMTHI sees them at once.
 *
 * After StartConfigurationHBased (host-based configuration with TLS) every request must come
 * over a TLS connection whose client certificate acm_fw.c accepts (the server asks for one when
 * --trust-ca gave it roots to name); AccessDenied otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "mei.h"
#include "sim.h"

#define NS_SOAP    "http://www.w3.org/2003/05/soap-envelope"
#define NS_ADDR    "http://schemas.xmlsoap.org/ws/2004/08/addressing"
#define NS_WSMAN   "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
#define NS_TRUST   "http://schemas.xmlsoap.org/ws/2005/02/trust"
#define NS_WSS     "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define NS_CIMBIND "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"
#define NS_COMMON  "http://schemas.dmtf.org/wbem/wscim/1/common"
#define NS_EVENT   "http://schemas.xmlsoap.org/ws/2004/08/eventing"
#define NS_XFER    "http://schemas.xmlsoap.org/ws/2004/09/transfer"
#define NS_ENUM    "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
#define NS_XSI     "http://www.w3.org/2001/XMLSchema-instance"

#define ANONYMOUS     "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
#define ACTION_GET    NS_XFER "/Get"
#define ACTION_FAULT  NS_ADDR "/fault"
#define URI_AMT       "http://intel.com/wbem/wscim/1/amt-schema/1/"
#define URI_IPS       "http://intel.com/wbem/wscim/1/ips-schema/1/"
#define URI_GENERAL   URI_AMT "AMT_GeneralSettings"
#define URI_SETUP_SVC URI_AMT "AMT_SetupAndConfigurationService"
#define URI_HBS       URI_IPS "IPS_HostBasedSetupService"
#define URI_TLS_DATA  URI_AMT "AMT_TLSSettingData"
#define URI_AUTH      URI_AMT "AMT_AuthorizationService"
#define URI_OPT_IN    URI_IPS "IPS_OptInService"
#define URI_POWER     URI_AMT "AMT_SystemPowerScheme"
#define ACTION_ENUMERATE NS_ENUM "/Enumerate"
#define ACTION_PULL      NS_ENUM "/Pull"
#define SCHEME_ID        "Intel(r) AMT Power Scheme "
#define ENUM_CONTEXT     "power-schemes-"
#define ACTION_PUT    NS_XFER "/Put"
#define TLS_8023      "Intel(r) AMT 802.3 TLS Settings"
#define TLS_LMS       "Intel(r) AMT LMS TLS Settings"

#define WSMAN_PATH        "/wsman"
#define BODY_MAX          ((size_t)256 * 1024)
#define NONCE_TIMEOUT_S   300u
#define NONCE_NC_SIZE     1024u
#define CONN_TIMEOUT_S    120u
#define CONTENT_TYPE_SOAP "application/soap+xml;charset=UTF-8"
#define ADMIN_USER        "admin"

/* SetupAndConfiguration/HostBasedSetup ReturnValues (PROTOCOL.md section 5). */
#define RV_SUCCESS       0u
#define RV_INVALID_STATE 2u
#define RV_INVALID_PARAM 3u
/* PT_STATUS codes that AMT_* methods answer (AMT SDK). */
#define PT_NOT_PERMITTED     16u
#define PT_INVALID_PARAMETER 36u
#define PT_INVALID_PASSWORD  2054u /* 0x806 */

struct sim_wsman {
	pthread_mutex_t lock; /* the daemons and the TLS material */
	struct MHD_Daemon *chan;
	bool chan_failed; /* said once on stderr; channels are refused */
	struct MHD_Daemon *lms;
	uint8_t nonce_seed[32];
	char opaque[33];
	unsigned serial; /* reply MessageIDs; under m->lock */
};

/* ---- small helpers ---- */

static const xmlChar *xc(const char *s)
{
	return (const xmlChar *)s;
}

static void wipe_free(char *p, size_t n)
{
	if (p)
		OPENSSL_cleanse(p, n);
	free(p);
}

/* ---- requests ---- */

struct request {
	char *body;
	size_t len, cap;
	bool too_big;
};

static int request_append(struct request *rq, const char *data, size_t n)
{
	if (rq->too_big || n > BODY_MAX - rq->len) {
		rq->too_big = true;
		return 0;
	}
	if (rq->len + n + 1 > rq->cap) {
		size_t cap = rq->cap ? rq->cap : 4096;
		char *p;

		while (cap < rq->len + n + 1)
			cap *= 2;
		p = malloc(cap);
		if (!p)
			return -1;
		if (rq->body)
			memcpy(p, rq->body, rq->len);
		wipe_free(rq->body, rq->cap);
		rq->body = p;
		rq->cap = cap;
	}
	memcpy(rq->body + rq->len, data, n);
	rq->len += n;
	rq->body[rq->len] = '\0';
	return 0;
}

/* What a SOAP request asks. Strings point into DOC. */
struct call {
	xmlDocPtr doc;
	char action[512];
	char resource[512];
	char message_id[256];
	xmlNodePtr input; /* the Body's first element, or NULL */
	char method[64];  /* "Get", or the method of ACTION on RESOURCE */
	char instance[128]; /* the InstanceID selector, "" without one */
	bool via_channel; /* over an APF channel (not the LMS stand-in) */
};

static bool is_element(xmlNodePtr n, const char *ns, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
	       xmlStrEqual(n->ns->href, xc(ns)) && (!name || xmlStrEqual(n->name, xc(name)));
}

static xmlNodePtr child(xmlNodePtr parent, const char *ns, const char *name)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
		if (is_element(n, ns, name))
			return n;
	return NULL;
}

static xmlNodePtr first_element(xmlNodePtr parent)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE)
			return n;
	return NULL;
}

/* The trimmed text of N into OUT; false when absent or too long. */
static bool node_text(xmlNodePtr n, char *out, size_t cap)
{
	xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
	const char *s = (const char *)t;
	size_t len;
	bool ok = false;

	if (t) {
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		len = strlen(s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
		                   s[len - 1] == '\n'))
			len--;
		if (len < cap) {
			memcpy(out, s, len);
			out[len] = '\0';
			ok = true;
		}
		OPENSSL_cleanse(t, (size_t)xmlStrlen(t));
		xmlFree(t);
	}
	return ok;
}

/* SOAP forbids a DTD; stopping the parser there means no entity is ever declared. */
static void refuse_dtd(void *ctx, const xmlChar *name, const xmlChar *external_id,
                       const xmlChar *system_id)
{
	(void)name;
	(void)external_id;
	(void)system_id;
	xmlStopParser((xmlParserCtxtPtr)ctx);
}

static xmlDocPtr parse_xml(const char *body, size_t len)
{
	xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
	xmlDocPtr doc = NULL;

	if (!ctxt || !ctxt->sax) {
		xmlFreeParserCtxt(ctxt);
		return NULL;
	}
	ctxt->sax->internalSubset = refuse_dtd;
	ctxt->sax->externalSubset = NULL;
	ctxt->sax->entityDecl = NULL;
	doc = xmlCtxtReadMemory(ctxt, body, (int)len, NULL, NULL,
	                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc && (ctxt->errNo == XML_ERR_USER_STOP || doc->intSubset || doc->extSubset ||
	            !ctxt->wellFormed)) {
		xmlFreeDoc(doc);
		doc = NULL;
	}
	xmlFreeParserCtxt(ctxt);
	return doc;
}

/* Parse the envelope's addressing headers and the Body's method element. */
static bool parse_call(const struct request *rq, struct call *c)
{
	xmlNodePtr root, header, body;
	size_t rlen;

	c->doc = rq->len ? parse_xml(rq->body, rq->len) : NULL;
	root = c->doc ? xmlDocGetRootElement(c->doc) : NULL;
	if (!is_element(root, NS_SOAP, "Envelope"))
		return false;
	header = child(root, NS_SOAP, "Header");
	body = child(root, NS_SOAP, "Body");
	if (!header || !body ||
	    !node_text(child(header, NS_ADDR, "Action"), c->action, sizeof(c->action)))
		return false;
	if (!node_text(child(header, NS_WSMAN, "ResourceURI"), c->resource, sizeof(c->resource)))
		c->resource[0] = '\0';
	if (!node_text(child(header, NS_ADDR, "MessageID"), c->message_id, sizeof(c->message_id)))
		c->message_id[0] = '\0';
	c->input = first_element(body);
	c->instance[0] = '\0';
	for (xmlNodePtr sel = child(child(header, NS_WSMAN, "SelectorSet"), NS_WSMAN, "Selector");
	     sel; sel = sel->next) {
		xmlChar *name = is_element(sel, NS_WSMAN, "Selector") ? xmlGetProp(sel, xc("Name"))
								       : NULL;

		if (name && xmlStrEqual(name, xc("InstanceID")))
			node_text(sel, c->instance, sizeof(c->instance));
		xmlFree(name);
	}

	rlen = strlen(c->resource);
	if (strcmp(c->action, ACTION_GET) == 0)
		snprintf(c->method, sizeof(c->method), "Get");
	else if (strcmp(c->action, ACTION_PUT) == 0)
		snprintf(c->method, sizeof(c->method), "Put");
	else if (strcmp(c->action, ACTION_ENUMERATE) == 0)
		snprintf(c->method, sizeof(c->method), "Enumerate");
	else if (strcmp(c->action, ACTION_PULL) == 0)
		snprintf(c->method, sizeof(c->method), "Pull");
	else if (rlen > 0 && strncmp(c->action, c->resource, rlen) == 0 && c->action[rlen] == '/' &&
	         strlen(c->action + rlen + 1) < sizeof(c->method))
		snprintf(c->method, sizeof(c->method), "%s", c->action + rlen + 1);
	else
		snprintf(c->method, sizeof(c->method), "%s", "?");
	return true;
}

/* The text of the input's parameter NAME (in the resource's namespace). */
static bool param(const struct call *c, const char *name, char *out, size_t cap)
{
	return node_text(child(c->input, c->resource, name), out, cap);
}

/* ---- replies ---- */

struct reply {
	unsigned status; /* HTTP status */
	bool drop;       /* close the connection, no reply */
	bool fault;      /* a SOAP fault (for the counters) */
	xmlDocPtr doc;
	xmlNodePtr body;     /* the reply's Body */
	xmlNsPtr ns_soap, g; /* g: the resource's namespace */
};

struct ns_decl {
	const char *prefix, *href;
};

/* The namespaces of AMT's replies (fixtures: a..g and xsi; h common on Gets). */
static const struct ns_decl reply_ns[] = {
    {"a", NS_SOAP}, {"b", NS_ADDR},    {"c", NS_WSMAN}, {"d", NS_TRUST},
    {"e", NS_WSS},  {"f", NS_CIMBIND}, {NULL, NULL},
};

/* Enumerations: the same and WS-Enumeration's. */
static const struct ns_decl enum_ns[] = {
    {"a", NS_SOAP}, {"b", NS_ADDR},    {"c", NS_WSMAN}, {"d", NS_TRUST},
    {"e", NS_WSS},  {"f", NS_CIMBIND}, {"i", NS_ENUM},  {NULL, NULL},
};

/* And of its faults (fixtures/wsman/fault_destination_unreachable.xml). */
static const struct ns_decl fault_ns[] = {
    {"g", NS_CIMBIND}, {"f", NS_EVENT}, {"e", NS_WSMAN}, {"d", NS_XFER}, {"c", NS_ENUM},
    {"b", NS_ADDR},    {"a", NS_SOAP},  {"h", NS_TRUST}, {"i", NS_WSS},  {NULL, NULL},
};

static xmlNsPtr find_ns(xmlNodePtr root, const char *href)
{
	for (xmlNsPtr ns = root->nsDef; ns; ns = ns->next)
		if (xmlStrEqual(ns->href, xc(href)))
			return ns;
	return NULL;
}

static xmlNodePtr add(xmlNodePtr parent, xmlNsPtr ns, const char *name, const char *text)
{
	return xmlNewTextChild(parent, ns, xc(name), text ? xc(text) : NULL);
}

/* The envelope and its header; the caller fills r->body. */
static bool reply_start(struct reply *r, struct amtsim *m, const struct call *c,
                        const struct ns_decl *decls, bool common, const char *resource,
                        const char *action)
{
	xmlNodePtr root, header, act;
	xmlNsPtr addr, wsman;
	char id[64];
	unsigned serial;

	pthread_mutex_lock(&m->lock);
	serial = ++m->wsman->serial;
	pthread_mutex_unlock(&m->lock);
	snprintf(id, sizeof(id), "uuid:00000000-8086-8086-8086-%012X", serial);

	r->doc = xmlNewDoc(xc("1.0"));
	root = r->doc ? xmlNewDocNode(r->doc, NULL, xc("Envelope"), NULL) : NULL;
	if (!root)
		return false;
	xmlDocSetRootElement(r->doc, root);
	for (const struct ns_decl *d = decls; d->prefix; d++)
		if (!xmlNewNs(root, xc(d->href), xc(d->prefix)))
			return false;
	if (resource && !xmlNewNs(root, xc(resource), xc("g")))
		return false;
	if (common && !xmlNewNs(root, xc(NS_COMMON), xc("h")))
		return false;
	if (!xmlNewNs(root, xc(NS_XSI), xc("xsi")))
		return false;
	r->ns_soap = find_ns(root, NS_SOAP);
	addr = find_ns(root, NS_ADDR);
	wsman = find_ns(root, NS_WSMAN);
	r->g = resource ? find_ns(root, resource) : NULL;
	xmlSetNs(root, r->ns_soap);
	header = xmlNewChild(root, r->ns_soap, xc("Header"), NULL);
	if (!header || !add(header, addr, "To", ANONYMOUS) ||
	    !add(header, addr, "RelatesTo", c->message_id))
		return false;
	act = add(header, addr, "Action", action);
	if (!act || !xmlSetNsProp(act, r->ns_soap, xc("mustUnderstand"), xc("true")) ||
	    !add(header, addr, "MessageID", id))
		return false;
	if (resource && !add(header, wsman, "ResourceURI", resource))
		return false;
	r->body = xmlNewChild(root, r->ns_soap, xc("Body"), NULL);
	return r->body != NULL;
}

/* A SOAP fault: Code (Sender or Receiver) with one Subcode, a Reason, HTTP 400. */
static void fault(struct reply *r, struct amtsim *m, const struct call *c, const char *code,
                  const char *subcode, const char *reason)
{
	xmlNodePtr f, n, sub, text;

	r->status = MHD_HTTP_BAD_REQUEST;
	r->fault = true;
	if (!reply_start(r, m, c, fault_ns, false, NULL, ACTION_FAULT))
		goto fail;
	f = xmlNewChild(r->body, r->ns_soap, xc("Fault"), NULL);
	n = f ? xmlNewChild(f, r->ns_soap, xc("Code"), NULL) : NULL;
	if (!n || !add(n, r->ns_soap, "Value", code))
		goto fail;
	sub = xmlNewChild(n, r->ns_soap, xc("Subcode"), NULL);
	if (!sub || !add(sub, r->ns_soap, "Value", subcode))
		goto fail;
	n = xmlNewChild(f, r->ns_soap, xc("Reason"), NULL);
	text = n ? add(n, r->ns_soap, "Text", reason) : NULL;
	if (!text)
		goto fail;
	xmlNodeSetLang(text, xc("en-US"));
	if (!xmlNewChild(f, r->ns_soap, xc("Detail"), NULL))
		goto fail;
	return;
fail:
	r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static void fault_unreachable(struct reply *r, struct amtsim *m, const struct call *c)
{
	fault(r, m, c, "a:Sender", "b:DestinationUnreachable",
	      "No route can be determined to reach the destination role defined by the "
	      "WSAddressing To.");
}

static void fault_action(struct reply *r, struct amtsim *m, const struct call *c)
{
	fault(r, m, c, "a:Sender", "b:ActionNotSupported",
	      "The action is not supported by the service.");
}

static void fault_access(struct reply *r, struct amtsim *m, const struct call *c)
{
	fault(r, m, c, "a:Sender", "e:AccessDenied",
	      "The sender was not authorized to access the resource.");
}

static void fault_schema(struct reply *r, struct amtsim *m, const struct call *c)
{
	fault(r, m, c, "a:Sender", "e:SchemaValidationError",
	      "The supplied SOAP violates the corresponding XML Schema definition.");
}

static void fault_internal(struct reply *r, struct amtsim *m, const struct call *c)
{
	fault(r, m, c, "a:Receiver", "e:InternalError",
	      "The service cannot comply with the request due to internal processing errors.");
}

/* A Get reply: <g:CLASS> with FIELDS. */
struct field {
	const char *name;
	char value[160];
};

/* A reply carrying one instance: the answer to a Get (ACTION GetResponse) or a Put. */
static void instance_reply(struct reply *r, struct amtsim *m, const struct call *c,
                           const char *action, const char *cls, const struct field *fields,
                           size_t n)
{
	xmlNodePtr inst;

	r->status = MHD_HTTP_OK;
	if (!reply_start(r, m, c, reply_ns, true, c->resource, action))
		goto fail;
	inst = xmlNewChild(r->body, r->g, xc(cls), NULL);
	if (!inst)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (!add(inst, r->g, fields[i].name, fields[i].value))
			goto fail;
	return;
fail:
	r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static void get_reply(struct reply *r, struct amtsim *m, const struct call *c, const char *cls,
                      const struct field *fields, size_t n)
{
	instance_reply(r, m, c, NS_XFER "/GetResponse", cls, fields, n);
}

/* Fill the field NAME of F (N fields) with VALUE (a printf format). */
__attribute__((format(printf, 4, 5))) static void set_field(struct field *f, size_t n,
                                                            const char *name, const char *fmt, ...)
{
	va_list ap;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(f[i].name, name) == 0) {
			va_start(ap, fmt);
			(void)vsnprintf(f[i].value, sizeof(f[i].value), fmt, ap);
			va_end(ap);
			return;
		}
	}
}

#define SET_FIELD(f, name, ...) set_field(f, sizeof(f) / sizeof(f[0]), name, __VA_ARGS__)

/* A method's reply: <g:METHOD_OUTPUT><g:ReturnValue>RV</g:ReturnValue></g:METHOD_OUTPUT>. */
static void method_reply(struct reply *r, struct amtsim *m, const struct call *c, unsigned rv)
{
	char action[600], out[96], text[16];
	xmlNodePtr o;

	r->status = MHD_HTTP_OK;
	snprintf(action, sizeof(action), "%s/%sResponse", c->resource, c->method);
	snprintf(out, sizeof(out), "%s_OUTPUT", c->method);
	snprintf(text, sizeof(text), "%u", rv);
	if (!reply_start(r, m, c, reply_ns, false, c->resource, action))
		goto fail;
	o = xmlNewChild(r->body, r->g, xc(out), NULL);
	if (!o || !add(o, r->g, "ReturnValue", text))
		goto fail;
	return;
fail:
	r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* ---- the methods ---- */

enum who { WHO_NOBODY, WHO_LOCAL, WHO_ADMIN };

static void get_general_settings(struct reply *r, struct amtsim *m, const struct call *c)
{
	struct field f[] = {
	    {"AMTNetworkEnabled", "1"},
	    {"DDNSPeriodicUpdateInterval", "1440"},
	    {"DDNSTTL", "900"},
	    {"DDNSUpdateByDHCPServerEnabled", "true"},
	    {"DDNSUpdateEnabled", "false"},
	    {"DHCPSyncRequiresHostname", "1"},
	    {"DHCPv6ConfigurationTimeout", "0"},
	    {"DigestRealm", ""},
	    {"DomainName", ""},
	    {"ElementName", "Intel(r) AMT: General Settings"},
	    {"HostName", ""},
	    {"HostOSFQDN", ""},
	    {"IdleWakeTimeout", "1"},
	    {"InstanceID", "Intel(r) AMT: General Settings"},
	    {"NetworkInterfaceEnabled", "true"},
	    {"PingResponseEnabled", "true"},
	    {"PowerSource", "0"},
	    {"PreferredAddressFamily", "0"},
	    {"PresenceNotificationInterval", "0"},
	    {"PrivacyLevel", "0"},
	    {"RmcpPingResponseEnabled", "true"},
	    {"SharedFQDN", "true"},
	    {"ThunderboltDockEnabled", "0"},
	    {"WsmanOnlyMode", "false"},
	};

	pthread_mutex_lock(&m->lock);
	SET_FIELD(f, "DigestRealm", "%s", m->p.digest_realm);
	SET_FIELD(f, "DomainName", "%s", m->p.dns_suffix);
	pthread_mutex_unlock(&m->lock);
	get_reply(r, m, c, "AMT_GeneralSettings", f, sizeof(f) / sizeof(f[0]));
}

/* AMT_TLSSettingData: the 802.3 (network) instance, or the LMS (local ports) one. */
static void get_tls_setting_data(struct reply *r, struct amtsim *m, const struct call *c)
{
	bool lms = strcmp(c->instance, TLS_LMS) == 0;
	struct field f[] = {
	    {"AcceptNonSecureConnections", "false"},
	    {"ElementName", ""},
	    {"Enabled", "false"},
	    {"InstanceID", ""},
	    {"MutualAuthentication", "false"},
	};

	pthread_mutex_lock(&m->lock);
	SET_FIELD(f, "ElementName", "%s", lms ? TLS_LMS : TLS_8023);
	SET_FIELD(f, "InstanceID", "%s", lms ? TLS_LMS : TLS_8023);
	SET_FIELD(f, "Enabled", "%s", (lms ? m->p.tls_enforced : m->p.network_tls) ? "true" : "false");
	SET_FIELD(f, "AcceptNonSecureConnections", "%s",
		  (lms ? m->p.tls_enforced : m->p.network_tls) ? "false" : "true");
	pthread_mutex_unlock(&m->lock);
	get_reply(r, m, c, "AMT_TLSSettingData", f, sizeof(f) / sizeof(f[0]));
}

static void get_host_based_setup(struct reply *r, struct amtsim *m, const struct call *c)
{
	struct field f[] = {
	    {"AllowedControlModes", "2"},
	    {"AllowedControlModes", "1"},
	    {"CertChainStatus", "0"},
	    {"ConfigurationNonce", ""},
	    {"CreationClassName", "IPS_HostBasedSetupService"},
	    {"CurrentControlMode", ""},
	    {"ElementName", "Intel(r) AMT Host Based Setup Service"},
	    {"Name", "Intel(r) AMT Host Based Setup Service"},
	    {"SystemCreationClassName", "CIM_ComputerSystem"},
	    {"SystemName", "Intel(r) AMT"},
	};

	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	sim_acm_new_nonce(m); /* a fresh one on every Get */
	SET_FIELD(f, "ConfigurationNonce", "%s", m->config_nonce);
	SET_FIELD(f, "CurrentControlMode", "%u", (unsigned)m->p.control_mode);
	pthread_mutex_unlock(&m->lock);
	get_reply(r, m, c, "IPS_HostBasedSetupService", f, sizeof(f) / sizeof(f[0]));
}

static void get_setup_service(struct reply *r, struct amtsim *m, const struct call *c)
{
	struct field f[] = {
	    {"CreationClassName", "AMT_SetupAndConfigurationService"},
	    {"ElementName", "Intel(r) AMT Setup and Configuration Service"},
	    {"EnabledState", "5"},
	    {"Name", "Intel(r) AMT Setup and Configuration Service"},
	    {"PasswordModel", "1"},
	    {"ProvisioningMode", ""},
	    {"ProvisioningServerOTP", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
	    {"ProvisioningState", ""},
	    {"RequestedState", "12"},
	    {"SystemCreationClassName", "CIM_ComputerSystem"},
	    {"SystemName", "Intel(r) AMT"},
	    {"ZeroTouchConfigurationEnabled", "true"},
	};

	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	SET_FIELD(f, "ProvisioningMode", "%u", (unsigned)m->p.provisioning_mode);
	SET_FIELD(f, "ProvisioningState", "%u", (unsigned)m->p.provisioning_state);
	pthread_mutex_unlock(&m->lock);
	get_reply(r, m, c, "AMT_SetupAndConfigurationService", f, sizeof(f) / sizeof(f[0]));
}

static bool is_hex32(const char *s)
{
	if (strlen(s) != SIM_HA1_HEX)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
		      (*s >= 'A' && *s <= 'F')))
			return false;
	return true;
}

/*
 * IPS_HostBasedSetupService.Setup: NetAdminPassEncryptionType 2 (HTTP Digest MD5 A1) and
 * NetworkAdminPassword, the admin's HA1 in hex. Pre-provisioning only.
 */
static void call_setup(struct reply *r, struct amtsim *m, const struct call *c)
{
	char type[16] = "", ha1[SIM_HA1_HEX + 8] = "";
	unsigned rv = RV_SUCCESS;

	if (!param(c, "NetAdminPassEncryptionType", type, sizeof(type)) ||
	    !param(c, "NetworkAdminPassword", ha1, sizeof(ha1)))
		type[0] = '\0';
	for (char *p = ha1; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');

	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	if (m->setup_return_set) {
		rv = m->setup_return;
	} else if (m->reset_before_setup) {
		m->reset_before_setup = false;
		sim_reset_conns(m, AMTSIM_CLIENT_COUNT);
		r->drop = true;
	} else if (m->p.provisioning_state != AMTHI_PROVISIONING_PRE ||
	           m->p.control_mode != AMTHI_CONTROL_NONE) {
		rv = RV_INVALID_STATE;
	} else if (strcmp(type, "2") != 0 || !is_hex32(ha1)) {
		rv = RV_INVALID_PARAM;
	} else {
		sim_machine_setup(m, ha1);
		if (m->reset_during_setup) {
			m->reset_during_setup = false;
			sim_reset_conns(m, AMTSIM_CLIENT_COUNT);
			r->drop = true;
		}
	}
	pthread_mutex_unlock(&m->lock);
	OPENSSL_cleanse(ha1, sizeof(ha1));
	if (!r->drop)
		method_reply(r, m, c, rv);
}

/* AMT_SetupAndConfigurationService.CommitChanges: "in" becomes "post"; as admin. */
static void call_commit(struct reply *r, struct amtsim *m, const struct call *c, enum who who)
{
	uint32_t restart;
	unsigned rv;

	if (who != WHO_ADMIN) {
		fault_access(r, m, c);
		return;
	}
	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	rv = sim_machine_commit(m);
	restart = rv == RV_SUCCESS ? m->p.commit_restart : SIM_COMMIT_KEEP;
	if (restart == SIM_COMMIT_RESTART_BEFORE) {
		if (c->via_channel)
			sim_reset_conns(m, AMTSIM_CLIENT_LME);
		r->drop = true;
	} else if (restart == SIM_COMMIT_RESTART_AFTER && c->via_channel) {
		m->restart_lme_on_close = true;
	}
	pthread_mutex_unlock(&m->lock);
	if (!r->drop)
		method_reply(r, m, c, rv);
}

/* AMT_SetupAndConfigurationService.Unprovision: client or admin control mode; as admin. */
static void call_unprovision(struct reply *r, struct amtsim *m, const struct call *c, enum who who)
{
	unsigned rv = RV_SUCCESS;

	if (who != WHO_ADMIN) {
		fault_access(r, m, c);
		return;
	}
	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	if (m->p.control_mode != AMTHI_CONTROL_NONE)
		sim_machine_unprovision(m);
	else
		rv = RV_INVALID_STATE;
	pthread_mutex_unlock(&m->lock);
	method_reply(r, m, c, rv);
}

/* ---- AMT_SystemPowerScheme: Enumerate, Pull, SetPowerScheme (as admin) ---- */

/* "power-schemes-N": the enumeration's next item is scheme N. Stateless, as contexts go. */
static bool enum_offset(const struct call *c, unsigned count, unsigned *at)
{
	char text[64];
	char *end;
	unsigned long v;

	if (!node_text(child(c->input, NS_ENUM, "EnumerationContext"), text, sizeof(text)) ||
	    strncmp(text, ENUM_CONTEXT, strlen(ENUM_CONTEXT)) != 0)
		return false;
	v = strtoul(text + strlen(ENUM_CONTEXT), &end, 10);
	if (*end || end == text + strlen(ENUM_CONTEXT) || v > count)
		return false;
	*at = (unsigned)v;
	return true;
}

static void enum_reply_start(struct reply *r, struct amtsim *m, const struct call *c,
                             const char *response, xmlNodePtr *resp, xmlNsPtr *ns)
{
	char action[128];

	r->status = MHD_HTTP_OK;
	snprintf(action, sizeof(action), "%s/%s", NS_ENUM, response);
	*resp = NULL;
	if (!reply_start(r, m, c, enum_ns, false, c->resource, action))
		return;
	*ns = find_ns(xmlDocGetRootElement(r->doc), NS_ENUM);
	*resp = xmlNewChild(r->body, *ns, xc(response), NULL);
}

static void enumerate_schemes(struct reply *r, struct amtsim *m, const struct call *c)
{
	xmlNodePtr resp;
	xmlNsPtr ns;

	if (!is_element(c->input, NS_ENUM, "Enumerate")) {
		fault_schema(r, m, c);
		return;
	}
	enum_reply_start(r, m, c, "EnumerateResponse", &resp, &ns);
	if (!resp || !add(resp, ns, "EnumerationContext", ENUM_CONTEXT "0"))
		r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static bool add_scheme_item(xmlNodePtr items, xmlNsPtr g, unsigned i, const char *name)
{
	uint8_t guid[16];
	char id[64], guid64[32];
	xmlNodePtr item = xmlNewChild(items, g, xc("AMT_SystemPowerScheme"), NULL);

	for (unsigned k = 0; k < sizeof(guid); k++)
		guid[k] = (uint8_t)(0x5c + 7 * i + k);
	EVP_EncodeBlock((unsigned char *)guid64, guid, sizeof(guid));
	snprintf(id, sizeof(id), SCHEME_ID "%u", i);
	return item && add(item, g, "ElementName", name) && add(item, g, "InstanceID", id) &&
	       add(item, g, "SchemeGUID", guid64);
}

static void pull_schemes(struct reply *r, struct amtsim *m, const struct call *c)
{
	char text[16], next[32];
	unsigned at, max = 1, count;
	xmlNodePtr resp, items;
	xmlNsPtr ns;

	pthread_mutex_lock(&m->lock);
	count = m->p.power_scheme_count;
	pthread_mutex_unlock(&m->lock);
	if (!is_element(c->input, NS_ENUM, "Pull")) {
		fault_schema(r, m, c);
		return;
	}
	if (!enum_offset(c, count, &at)) {
		fault(r, m, c, "a:Sender", "i:InvalidEnumerationContext",
		      "The supplied enumeration context is invalid.");
		return;
	}
	if (node_text(child(c->input, NS_ENUM, "MaxElements"), text, sizeof(text)))
		max = (unsigned)strtoul(text, NULL, 10);
	max = max == 0 ? 1 : max;
	enum_reply_start(r, m, c, "PullResponse", &resp, &ns);
	items = resp ? xmlNewChild(resp, ns, xc("Items"), NULL) : NULL;
	if (!items)
		goto fail;
	pthread_mutex_lock(&m->lock);
	for (; at < m->p.power_scheme_count && max > 0; at++, max--)
		if (!add_scheme_item(items, r->g, at, m->p.power_schemes[at]))
			break;
	count = m->p.power_scheme_count;
	pthread_mutex_unlock(&m->lock);
	snprintf(next, sizeof(next), ENUM_CONTEXT "%u", at);
	if (at < count ? !add(resp, ns, "EnumerationContext", next)
	               : !add(resp, ns, "EndOfSequence", NULL))
		goto fail;
	return;
fail:
	r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static void call_set_power_scheme(struct reply *r, struct amtsim *m, const struct call *c)
{
	unsigned rv = PT_INVALID_PARAMETER;
	char *end;
	unsigned long i;

	if (strncmp(c->instance, SCHEME_ID, strlen(SCHEME_ID)) != 0) {
		fault_unreachable(r, m, c);
		return;
	}
	i = strtoul(c->instance + strlen(SCHEME_ID), &end, 10);
	pthread_mutex_lock(&m->lock);
	if (!*end && end != c->instance + strlen(SCHEME_ID) && i < m->p.power_scheme_count) {
		snprintf(m->p.power_policy, sizeof(m->p.power_policy), "%s",
		         m->p.power_schemes[i]);
		sim_machine_save(m);
		rv = RV_SUCCESS;
	}
	pthread_mutex_unlock(&m->lock);
	method_reply(r, m, c, rv);
}

/* ---- admin control mode ---- */

static bool is_pre(const struct amtsim *m)
{
	return m->p.provisioning_state == AMTHI_PROVISIONING_PRE &&
	       m->p.control_mode == AMTHI_CONTROL_NONE;
}

/* "true" or "false" (xs:boolean also takes 1 and 0). */
static bool param_bool(const struct call *c, const char *name, bool *out)
{
	char text[8];

	if (!param(c, name, text, sizeof(text)))
		return false;
	*out = strcmp(text, "true") == 0 || strcmp(text, "1") == 0;
	return *out || strcmp(text, "false") == 0 || strcmp(text, "0") == 0;
}

/*
 * IPS_HostBasedSetupService.AddNextCertInChain: NextCertificate (base64 DER), IsLeafCertificate,
 * IsRootCertificate. The local system account before provisioning (AdminSetup), or admin in
 * client control mode (UpgradeClientToAdmin).
 */
static void call_add_cert(struct reply *r, struct amtsim *m, const struct call *c, enum who who)
{
	size_t cap = (size_t)16 * 1024;
	char *cert = malloc(cap);
	bool leaf, root;
	unsigned rv = 1; /* invalid parameter */

	if (cert && param(c, "NextCertificate", cert, cap) &&
	    param_bool(c, "IsLeafCertificate", &leaf) &&
	    param_bool(c, "IsRootCertificate", &root)) {
		pthread_mutex_lock(&m->lock);
		sim_machine_refresh(m);
		if ((who == WHO_LOCAL && is_pre(m) && !m->hbased) ||
		    (who == WHO_ADMIN && m->p.control_mode == AMTHI_CONTROL_CCM))
			rv = sim_acm_add_cert(m, cert, leaf, root);
		else
			rv = 3; /* invalid state */
		pthread_mutex_unlock(&m->lock);
	}
	free(cert);
	method_reply(r, m, c, rv);
}

/*
 * IPS_HostBasedSetupService.AdminSetup: NetAdminPassEncryptionType 2, NetworkAdminPassword (the
 * admin's HA1), McNonce, SigningAlgorithm, DigitalSignature. Pre-provisioning, on firmware
 * without TLS locally (StartConfigurationHBased is the way there).
 */
static void call_admin_setup(struct reply *r, struct amtsim *m, const struct call *c)
{
	char type[16] = "", ha1[SIM_HA1_HEX + 8] = "", mc[64] = "", alg[8] = "", sig[1500] = "";
	unsigned rv;

	if (!param(c, "NetAdminPassEncryptionType", type, sizeof(type)) ||
	    !param(c, "NetworkAdminPassword", ha1, sizeof(ha1)) ||
	    !param(c, "McNonce", mc, sizeof(mc)) ||
	    !param(c, "SigningAlgorithm", alg, sizeof(alg)) ||
	    !param(c, "DigitalSignature", sig, sizeof(sig)))
		type[0] = '\0';
	for (char *p = ha1; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	if (!is_pre(m) || m->hbased || m->p.tls_enforced)
		rv = RV_INVALID_STATE;
	else if (strcmp(type, "2") != 0 || !is_hex32(ha1))
		rv = RV_INVALID_PARAM;
	else if ((rv = sim_acm_check_signature(m, mc, alg, sig)) == RV_SUCCESS)
		sim_machine_admin_setup(m, ha1);
	pthread_mutex_unlock(&m->lock);
	OPENSSL_cleanse(ha1, sizeof(ha1));
	method_reply(r, m, c, rv);
}

/* IPS_HostBasedSetupService.UpgradeClientToAdmin: McNonce, SigningAlgorithm, DigitalSignature. */
static void call_upgrade(struct reply *r, struct amtsim *m, const struct call *c, enum who who)
{
	char mc[64] = "", alg[8] = "", sig[1500] = "";
	unsigned rv;

	if (!param(c, "McNonce", mc, sizeof(mc)) ||
	    !param(c, "SigningAlgorithm", alg, sizeof(alg)) ||
	    !param(c, "DigitalSignature", sig, sizeof(sig)))
		alg[0] = '\0';
	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	if (who != WHO_ADMIN || m->p.control_mode != AMTHI_CONTROL_CCM ||
	    m->p.provisioning_state != AMTHI_PROVISIONING_POST)
		rv = RV_INVALID_STATE;
	else if ((rv = sim_acm_check_signature(m, mc, alg, sig)) == RV_SUCCESS)
		sim_machine_upgrade(m);
	pthread_mutex_unlock(&m->lock);
	method_reply(r, m, c, rv);
}

/*
 * AMT_AuthorizationService.SetAdminAclEntryEx: Username, DigestPassword (base64 of the binary
 * MD5 of "USER:REALM:PASSWORD"). During host-based configuration, or as admin once provisioned.
 */
static void call_set_admin(struct reply *r, struct amtsim *m, const struct call *c, enum who who)
{
	static const char hex[] = "0123456789abcdef";
	char user[40] = "", digest[64] = "", ha1[SIM_HA1_HEX + 1];
	unsigned char bin[48];
	int n = -1;
	unsigned rv = PT_INVALID_PARAMETER;

	if (param(c, "Username", user, sizeof(user)) &&
	    param(c, "DigestPassword", digest, sizeof(digest)) && strlen(digest) == 24 && digest[22] == '=' && digest[23] == '=')
		n = EVP_DecodeBlock(bin, (const unsigned char *)digest, 24);
	if (n == 18 && strcmp(user, ADMIN_USER) == 0) {
		for (size_t i = 0; i < 16; i++) {
			ha1[2 * i] = hex[bin[i] >> 4];
			ha1[2 * i + 1] = hex[bin[i] & 15];
		}
		ha1[SIM_HA1_HEX] = '\0';
		pthread_mutex_lock(&m->lock);
		sim_machine_refresh(m);
		if (m->hbased || (who == WHO_ADMIN &&
		                  m->p.provisioning_state == AMTHI_PROVISIONING_POST)) {
			sim_machine_set_admin(m, ha1);
			rv = RV_SUCCESS;
		} else {
			rv = PT_NOT_PERMITTED;
		}
		pthread_mutex_unlock(&m->lock);
	}
	OPENSSL_cleanse(ha1, sizeof(ha1));
	OPENSSL_cleanse(bin, sizeof(bin));
	OPENSSL_cleanse(digest, sizeof(digest));
	method_reply(r, m, c, rv);
}

/*
 * AMT_SetupAndConfigurationService.SetMEBxPassword: Password. During host-based configuration,
 * or as admin in admin control mode; AMT's password rules, INVALID_PASSWORD otherwise.
 */
static void call_set_mebx(struct reply *r, struct amtsim *m, const struct call *c, enum who who)
{
	char pw[64] = "";
	unsigned rv;

	if (!param(c, "Password", pw, sizeof(pw))) {
		rv = PT_INVALID_PARAMETER;
	} else {
		pthread_mutex_lock(&m->lock);
		sim_machine_refresh(m);
		if (!m->hbased && (who != WHO_ADMIN || m->p.control_mode != AMTHI_CONTROL_ACM))
			rv = PT_NOT_PERMITTED;
		else if (!sim_mebx_password_ok(pw))
			rv = PT_INVALID_PASSWORD;
		else {
			sim_machine_set_mebx(m, pw);
			rv = RV_SUCCESS;
		}
		pthread_mutex_unlock(&m->lock);
	}
	OPENSSL_cleanse(pw, sizeof(pw));
	method_reply(r, m, c, rv);
}

/* IPS_OptInService as it is now, in the reply to a Get or a Put (ACTION). */
static void opt_in_reply(struct reply *r, struct amtsim *m, const struct call *c,
                         const char *action)
{
	struct field f[] = {
	    {"CanModifyOptInPolicy", ""},
	    {"CreationClassName", "IPS_OptInService"},
	    {"ElementName", "Intel(r) AMT OptIn Service"},
	    {"Name", "Intel(r) AMT OptIn Service"},
	    {"OptInCodeTimeout", "120"},
	    {"OptInDisplayTimeout", "300"},
	    {"OptInRequired", ""},
	    {"OptInState", "0"},
	    {"SystemCreationClassName", "CIM_ComputerSystem"},
	    {"SystemName", "Intel(r) AMT"},
	};

	pthread_mutex_lock(&m->lock);
	SET_FIELD(f, "OptInRequired", "%u", (unsigned)m->opt_in_required);
	/* client control mode always asks; admin control mode may be told not to */
	SET_FIELD(f, "CanModifyOptInPolicy", "%u",
	          m->p.control_mode == AMTHI_CONTROL_ACM ? 1u : 0u);
	pthread_mutex_unlock(&m->lock);
	instance_reply(r, m, c, action, "IPS_OptInService", f, sizeof(f) / sizeof(f[0]));
}

/*
 * Put of IPS_OptInService: OptInRequired 0 (none), 1 (KVM) or 4294967295 (all), as admin in
 * admin control mode; the reply is the instance as it now is (a PutResponse).
 */
static void put_opt_in(struct reply *r, struct amtsim *m, const struct call *c, enum who who)
{
	char text[16] = "";
	unsigned long v;
	char *end;
	bool ok;

	if (!is_element(c->input, c->resource, "IPS_OptInService") ||
	    !node_text(child(c->input, c->resource, "OptInRequired"), text, sizeof(text))) {
		fault_schema(r, m, c);
		return;
	}
	v = strtoul(text, &end, 10);
	pthread_mutex_lock(&m->lock);
	ok = who == WHO_ADMIN && m->p.control_mode == AMTHI_CONTROL_ACM;
	if (ok && *text && !*end && (v == 0 || v == 1 || v == SIM_OPT_IN_ALL)) {
		m->opt_in_required = (uint32_t)v;
		sim_machine_save(m);
	}
	pthread_mutex_unlock(&m->lock);
	if (ok)
		opt_in_reply(r, m, c, NS_XFER "/PutResponse");
	else
		fault_access(r, m, c);
}

/* method-return=METHOD:N: the ReturnValue METHOD answers without doing anything. */
static bool method_return_armed(struct amtsim *m, const struct call *c, unsigned *rv)
{
	bool armed = false;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->method_return_count && !armed; i++)
		if (strcmp(m->method_returns[i].method, c->method) == 0) {
			*rv = m->method_returns[i].rv;
			armed = true;
		}
	pthread_mutex_unlock(&m->lock);
	return armed;
}

/* soap-fault=METHOD: "Setup", or "CLASS.METHOD" such as "AMT_GeneralSettings.Get". */
static bool soap_fault_armed(struct amtsim *m, const struct call *c)
{
	const char *cls = strrchr(c->resource, '/');
	char qualified[SIM_METHOD_MAX * 2 + 2];
	bool armed = false;

	snprintf(qualified, sizeof(qualified), "%s.%s", cls ? cls + 1 : c->resource, c->method);
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->soap_fault_count; i++)
		if (strcmp(m->soap_faults[i], c->method) == 0 ||
		    strcmp(m->soap_faults[i], qualified) == 0)
			armed = true;
	pthread_mutex_unlock(&m->lock);
	return armed;
}

static bool is(const struct call *c, const char *resource, const char *method)
{
	return strcmp(c->resource, resource) == 0 && strcmp(c->method, method) == 0;
}

/* The methods served (besides Get and the Put of IPS_OptInService). */
static bool is_method(const struct call *c)
{
	static const char *const methods[][2] = {
	    {URI_HBS, "Setup"},
	    {URI_HBS, "AddNextCertInChain"},
	    {URI_HBS, "AdminSetup"},
	    {URI_HBS, "UpgradeClientToAdmin"},
	    {URI_AUTH, "SetAdminAclEntryEx"},
	    {URI_SETUP_SVC, "SetMEBxPassword"},
	    {URI_SETUP_SVC, "CommitChanges"},
	    {URI_SETUP_SVC, "Unprovision"},
	    {URI_POWER, "SetPowerScheme"},
	};

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (is(c, methods[i][0], methods[i][1]))
			return true;
	return false;
}

static void dispatch_get(struct reply *r, struct amtsim *m, const struct call *c, bool tls_data)
{
	if (strcmp(c->resource, URI_GENERAL) == 0)
		get_general_settings(r, m, c);
	else if (tls_data)
		get_tls_setting_data(r, m, c);
	else if (strcmp(c->resource, URI_HBS) == 0)
		get_host_based_setup(r, m, c);
	else if (strcmp(c->resource, URI_OPT_IN) == 0)
		opt_in_reply(r, m, c, NS_XFER "/GetResponse");
	else if (strcmp(c->resource, URI_SETUP_SVC) == 0)
		get_setup_service(r, m, c);
	else
		fault_action(r, m, c);
}

static void dispatch(struct reply *r, struct amtsim *m, const struct call *c, enum who who)
{
	char input[96];
	unsigned rv;
	bool tls_data = strcmp(c->resource, URI_TLS_DATA) == 0 &&
			(strcmp(c->instance, TLS_8023) == 0 || strcmp(c->instance, TLS_LMS) == 0);
	bool known = strcmp(c->resource, URI_GENERAL) == 0 || strcmp(c->resource, URI_HBS) == 0 ||
	             strcmp(c->resource, URI_SETUP_SVC) == 0 ||
	             strcmp(c->resource, URI_AUTH) == 0 || strcmp(c->resource, URI_OPT_IN) == 0 ||
	             strcmp(c->resource, URI_POWER) == 0 || tls_data;

	if (!known) {
		fault_unreachable(r, m, c);
		return;
	}
	if (soap_fault_armed(m, c)) {
		fault_internal(r, m, c);
		return;
	}
	if (strcmp(c->method, "Get") == 0) {
		dispatch_get(r, m, c, tls_data);
		return;
	}
	if (is(c, URI_OPT_IN, "Put")) {
		put_opt_in(r, m, c, who);
		return;
	}
	if (strcmp(c->resource, URI_POWER) == 0 && who != WHO_ADMIN) {
		fault_access(r, m, c);
		return;
	}
	if (is(c, URI_POWER, "Enumerate")) {
		enumerate_schemes(r, m, c);
		return;
	}
	if (is(c, URI_POWER, "Pull")) {
		pull_schemes(r, m, c);
		return;
	}
	if (!is_method(c)) {
		fault_action(r, m, c);
		return;
	}
	snprintf(input, sizeof(input), "%s_INPUT", c->method);
	if (!is_element(c->input, c->resource, input))
		fault_schema(r, m, c);
	else if (method_return_armed(m, c, &rv))
		method_reply(r, m, c, rv);
	else if (is(c, URI_HBS, "Setup"))
		call_setup(r, m, c);
	else if (is(c, URI_HBS, "AddNextCertInChain"))
		call_add_cert(r, m, c, who);
	else if (is(c, URI_HBS, "AdminSetup"))
		call_admin_setup(r, m, c);
	else if (is(c, URI_HBS, "UpgradeClientToAdmin"))
		call_upgrade(r, m, c, who);
	else if (is(c, URI_AUTH, "SetAdminAclEntryEx"))
		call_set_admin(r, m, c, who);
	else if (is(c, URI_SETUP_SVC, "SetMEBxPassword"))
		call_set_mebx(r, m, c, who);
	else if (is(c, URI_SETUP_SVC, "CommitChanges"))
		call_commit(r, m, c, who);
	else if (is(c, URI_SETUP_SVC, "Unprovision"))
		call_unprovision(r, m, c, who);
	else if (is(c, URI_POWER, "SetPowerScheme"))
		call_set_power_scheme(r, m, c);
	else
		fault_action(r, m, c);
}

/* ---- HTTP ---- */

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result queue_reply(struct MHD_Connection *conn, struct reply *r)
{
	struct MHD_Response *resp;
	xmlChar *text = NULL;
	int len = 0;
	enum MHD_Result ret;

	if (r->status == MHD_HTTP_INTERNAL_SERVER_ERROR || !r->doc)
		return queue_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
	xmlDocDumpMemoryEnc(r->doc, &text, &len, "UTF-8");
	if (!text || len <= 0) {
		xmlFree(text);
		return queue_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
	}
	resp = MHD_create_response_from_buffer((size_t)len, text, MHD_RESPMEM_MUST_COPY);
	xmlFree(text);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE_SOAP);
	ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The stored HA1 (lower-case hex) as the 16 bytes libmicrohttpd checks against. */
static bool ha1_bytes(const char *hex, uint8_t bin[16])
{
	size_t got = 0;

	return OPENSSL_hexstr2buf_ex(bin, 16, &got, hex, '\0') == 1 && got == 16;
}

/* Who the request's Digest credentials are, or WHO_NOBODY; *stale when the nonce was. */
static enum who authenticate(struct amtsim *m, struct MHD_Connection *conn, char *realm,
                             size_t realm_cap, bool *stale)
{
	char lsa_user[33], lsa_pass[33], ha1[SIM_HA1_HEX + 1];
	uint8_t bin[16];
	enum who who = WHO_NOBODY;
	bool pre;
	char *user;
	int r = MHD_NO;

	*stale = false;
	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	/* the local system account serves until AMT is provisioned */
	pre = (m->p.provisioning_state == AMTHI_PROVISIONING_PRE &&
	       m->p.control_mode == AMTHI_CONTROL_NONE) ||
	      m->hbased;
	snprintf(realm, realm_cap, "%s", sim_challenge_realm(m));
	memcpy(lsa_user, m->p.lsa_username, sizeof(lsa_user));
	memcpy(lsa_pass, m->p.lsa_password, sizeof(lsa_pass));
	memcpy(ha1, m->admin_ha1, sizeof(ha1));
	pthread_mutex_unlock(&m->lock);

	user = MHD_digest_auth_get_username(conn);
	if (user && pre && lsa_user[0] && strcmp(user, lsa_user) == 0) {
		r = MHD_digest_auth_check2(conn, realm, user, lsa_pass, NONCE_TIMEOUT_S,
		                           MHD_DIGEST_ALG_MD5);
		who = WHO_LOCAL;
	} else if (user && ha1[0] && strcmp(user, ADMIN_USER) == 0 && ha1_bytes(ha1, bin)) {
		r = MHD_digest_auth_check_digest2(conn, realm, user, bin, sizeof(bin),
		                                  NONCE_TIMEOUT_S, MHD_DIGEST_ALG_MD5);
		who = WHO_ADMIN;
	}
	if (user)
		MHD_free(user);
	OPENSSL_cleanse(lsa_pass, sizeof(lsa_pass));
	OPENSSL_cleanse(ha1, sizeof(ha1));
	OPENSSL_cleanse(bin, sizeof(bin));
	*stale = r == MHD_INVALID_NONCE;
	return r == MHD_YES ? who : WHO_NOBODY;
}

/* The quoted value of KEY in a Digest challenge. */
static bool challenge_param(const char *hdr, const char *key, char *out, size_t cap)
{
	char pat[32];
	const char *p, *q;

	snprintf(pat, sizeof(pat), "%s=\"", key);
	p = strstr(hdr, pat);
	if (!p)
		return false;
	p += strlen(pat);
	q = strchr(p, '"');
	if (!q || (size_t)(q - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return true;
}

/*
 * libmicrohttpd 0.9.75 writes "algorithm=md5" in lower case, which Python's urllib refuses
 * (it compares with "MD5"); AMT's own challenge reads as below. The header is rewritten with
 * MHD's nonce before the handler returns, while the response is not yet being sent.
 */
static void canonical_challenge(struct MHD_Response *resp, const char *realm, const char *opaque,
                                bool stale)
{
	const char *hdr = MHD_get_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE);
	char nonce[128], old[512], value[512];

	if (!hdr || strlen(hdr) >= sizeof(old))
		return;
	snprintf(old, sizeof(old), "%s", hdr);
	if (!challenge_param(old, "nonce", nonce, sizeof(nonce)))
		return;
	snprintf(value, sizeof(value),
	         "Digest realm=\"%s\", nonce=\"%s\", stale=\"%s\", qop=\"auth\", "
	         "opaque=\"%s\", algorithm=MD5",
	         realm, nonce, stale ? "true" : "false", opaque);
	if (MHD_del_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, old) == MHD_YES &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, value) != MHD_YES)
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, old);
}

static enum MHD_Result challenge(struct amtsim *m, struct MHD_Connection *conn, const char *realm,
                                 bool stale)
{
	static const char page[] =
	    "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\">"
	    "<html><head><title>401 Unauthorized</title></head>"
	    "<body>Unauthorized</body></html>";
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(sizeof(page) - 1, (void *)page, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	pthread_mutex_lock(&m->lock);
	m->stats.wsman_unauthorized++;
	pthread_mutex_unlock(&m->lock);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html");
	ret = MHD_queue_auth_fail_response2(conn, realm, m->wsman->opaque, resp,
	                                    stale ? MHD_YES : MHD_NO, MHD_DIGEST_ALG_MD5);
	if (ret == MHD_YES)
		canonical_challenge(resp, realm, m->wsman->opaque, stale);
	MHD_destroy_response(resp);
	return ret;
}

static bool from_channel(struct amtsim *m, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);

	return info && info->daemon != m->wsman->lms;
}

/*
 * During host-based configuration with TLS, only the client certificate StartConfigurationHBased
 * named may talk (acm_fw.c checks it and its chain).
 */
static bool client_certificate_ok(struct amtsim *m, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;
	const gnutls_datum_t *peers;
	const uint8_t *der[8];
	size_t len[8];
	unsigned n = 0;
	bool configuring;

	pthread_mutex_lock(&m->lock);
	configuring = m->hbased;
	pthread_mutex_unlock(&m->lock);
	if (!configuring)
		return true;
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	peers = info && info->tls_session ? gnutls_certificate_get_peers(info->tls_session, &n)
	                                  : NULL;
	if (!peers || n == 0 || n > 8)
		return false;
	for (unsigned i = 0; i < n; i++) {
		der[i] = peers[i].data;
		len[i] = peers[i].size;
	}
	return sim_acm_client_ok(m, der, len, n);
}

/* A whole request is in: authenticate, parse, answer. */
static enum MHD_Result serve(struct amtsim *m, struct MHD_Connection *conn, const char *url,
                             const char *method, struct request *rq)
{
	struct call c = {0};
	struct reply r = {0};
	char realm[SIM_REALM_MAX + 32];
	unsigned n, latency;
	bool stale, lost;
	enum who who;
	enum MHD_Result ret;

	pthread_mutex_lock(&m->lock);
	m->stats.wsman_requests++;
	pthread_mutex_unlock(&m->lock);
	if (strcmp(url, WSMAN_PATH) != 0)
		return queue_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only\n");
	who = authenticate(m, conn, realm, sizeof(realm), &stale);
	if (who == WHO_NOBODY)
		return challenge(m, conn, realm, stale);
	if (rq->too_big)
		return queue_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, "too large\n");

	c.via_channel = from_channel(m, conn);
	if (!parse_call(rq, &c)) {
		fault_schema(&r, m, &c);
		goto answer;
	}
	if (!client_certificate_ok(m, conn)) {
		fault_access(&r, m, &c);
		goto answer;
	}

	pthread_mutex_lock(&m->lock);
	n = ++m->stats.wsman_authenticated;
	sim_count_method(m, c.method);
	lost = sim_take_fault(m, SIM_FAULT_LME_DISCONNECT, n);
	if (lost)
		sim_disconnect_lme(m, APF_DISCONNECT_CONNECTION_LOST);
	latency = m->wsman_latency_ms;
	pthread_mutex_unlock(&m->lock);
	if (lost) {
		xmlFreeDoc(c.doc);
		return MHD_NO;
	}
	sim_sleep_ms(latency);
	dispatch(&r, m, &c, who);
answer:
	xmlFreeDoc(c.doc);
	if (r.drop) {
		xmlFreeDoc(r.doc);
		return MHD_NO;
	}
	if (r.fault) {
		pthread_mutex_lock(&m->lock);
		m->stats.wsman_faults++;
		pthread_mutex_unlock(&m->lock);
	}
	ret = queue_reply(conn, &r);
	xmlFreeDoc(r.doc);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	struct request *rq = *con_cls;

	(void)version;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (request_append(rq, upload, *upload_size) < 0)
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	return serve(cls, conn, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (rq) {
		wipe_free(rq->body, rq->cap);
		free(rq);
	}
	*con_cls = NULL;
}

/* ---- daemons ---- */

static struct MHD_Daemon *start_daemon(struct amtsim *m, const struct sockaddr_in *listen_at,
                                       char *err, size_t errlen)
{
	struct sim_wsman *w = m->wsman;
	bool tls = m->p.tls_enforced;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                 MHD_USE_POLL | MHD_USE_ITC;
	struct MHD_OptionItem opts[9];
	size_t n = 0;
	struct MHD_Daemon *d;

	if (tls && (!m->tls_cert_pem || !m->tls_key_pem)) {
		snprintf(
		    err, errlen,
		    "this machine enforces TLS on local ports: WS-Man on 16993 needs a "
		    "certificate and key (--tls-cert FILE --tls-key FILE, or the profile's "
		    "amt.tls_cert and amt.tls_key; tests/amtsim/make-test-certs.sh makes them)");
		return NULL;
	}
	if (tls && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
		snprintf(err, errlen, "libmicrohttpd was built without TLS");
		return NULL;
	}
	if (tls)
		flags |= MHD_USE_TLS;
	if (!listen_at)
		flags |= MHD_USE_NO_LISTEN_SOCKET;
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, m};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_DIGEST_AUTH_RANDOM,
	                                    (intptr_t)sizeof(w->nonce_seed), w->nonce_seed};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NONCE_NC_SIZE, NONCE_NC_SIZE, NULL};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S, NULL};
	if (tls) {
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, m->tls_key_pem};
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, m->tls_cert_pem};
		/* roots to name in the CertificateRequest: clients may send a certificate */
		if (m->trust_ca_pem)
			opts[n++] =
			    (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, m->trust_ca_pem};
	}
	if (listen_at)
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)listen_at};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_ARRAY, opts,
	                     MHD_OPTION_END);
	if (!d)
		snprintf(err, errlen, "cannot start the WS-Man server%s%s",
		         tls ? " (is the TLS certificate and key a matching PEM pair?)" : "",
		         listen_at ? " (is the port free?)" : "");
	return d;
}

int sim_wsman_init(struct amtsim *m)
{
	struct sim_wsman *w = calloc(1, sizeof(*w));
	uint8_t raw[16];

	if (!w)
		return -1;
	pthread_mutex_init(&w->lock, NULL);
	if (RAND_bytes(w->nonce_seed, sizeof(w->nonce_seed)) != 1 ||
	    RAND_bytes(raw, sizeof(raw)) != 1) {
		pthread_mutex_destroy(&w->lock);
		free(w);
		return -1;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(w->opaque + 2 * i, 3, "%02x", raw[i]);
	m->wsman = w;
	return 0;
}

int sim_wsman_open_channel(struct amtsim *m, uint16_t port)
{
	struct sim_wsman *w = m->wsman;
	/* what a channel's HTTP connection looks like to the server: loopback */
	struct sockaddr_in peer = {.sin_family = AF_INET,
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	                           .sin_port = htons(port)};
	uint16_t wsman_port = m->p.tls_enforced ? APF_PORT_HTTPS : APF_PORT_HTTP;
	char err[512];
	int sv[2] = {-1, -1}, fd = -1;

	if (port != wsman_port)
		return -1; /* the redirection port: nothing behind it */
	pthread_mutex_lock(&w->lock);
	if (!w->chan && !w->chan_failed) {
		w->chan = start_daemon(m, NULL, err, sizeof(err));
		if (!w->chan) {
			w->chan_failed = true;
			fprintf(stderr, "amtsim: refusing APF channels to port %u: %s\n", port,
			        err);
		}
	}
	if (w->chan && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
		if (MHD_add_connection(w->chan, sv[1], (struct sockaddr *)&peer, sizeof(peer)) ==
		    MHD_YES) {
			fd = sv[0];
		} else {
			/* MHD closed sv[1] */
			close(sv[0]);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return fd;
}

int sim_wsman_serve_lms(struct amtsim *m, uint16_t port, uint16_t *bound, char *err, size_t errlen)
{
	struct sim_wsman *w = m->wsman;
	struct sockaddr_in at = {.sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	                         .sin_port = htons(port)};
	const union MHD_DaemonInfo *info;
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (w->lms) {
		snprintf(err, errlen, "the LMS stand-in already runs");
		r = -1;
	} else {
		w->lms = start_daemon(m, &at, err, errlen);
		if (!w->lms)
			r = -1;
	}
	if (r == 0 && bound) {
		info = MHD_get_daemon_info(w->lms, MHD_DAEMON_INFO_BIND_PORT);
		*bound = info ? info->port : port;
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

void sim_wsman_stop(struct amtsim *m)
{
	struct sim_wsman *w = m->wsman;
	struct MHD_Daemon *chan, *lms;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	chan = w->chan;
	lms = w->lms;
	w->chan = w->lms = NULL;
	pthread_mutex_unlock(&w->lock);
	/* Joins the daemons' threads, which may be in a handler that takes m->lock. */
	if (chan)
		MHD_stop_daemon(chan);
	if (lms)
		MHD_stop_daemon(lms);
	pthread_mutex_destroy(&w->lock);
	free(w);
	m->wsman = NULL;
}

void sim_count_method(struct amtsim *m, const char *method)
{
	for (unsigned i = 0; i < m->method_kinds; i++) {
		if (strcmp(m->methods[i].name, method) == 0) {
			m->methods[i].count++;
			return;
		}
	}
	if (m->method_kinds < SIM_MAX_METHODS) {
		snprintf(m->methods[m->method_kinds].name, SIM_METHOD_MAX + 1, "%s", method);
		m->methods[m->method_kinds++].count = 1;
	}
}

unsigned amtsim_wsman_count(struct amtsim *m, const char *method)
{
	unsigned n = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->method_kinds; i++)
		if (strcmp(m->methods[i].name, method) == 0)
			n = m->methods[i].count;
	pthread_mutex_unlock(&m->lock);
	return n;
}

/* ---- TLS material ---- */

static char *read_pem(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0, cap = 0;
	char buf[4096];
	size_t n;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (len + n + 1 > cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *t;

			while (ncap < len + n + 1)
				ncap *= 2;
			if (ncap > (size_t)1024 * 1024) {
				snprintf(err, errlen, "%s: too large for a PEM file", path);
				wipe_free(text, cap);
				(void)fclose(f); /* read only */
				return NULL;
			}
			t = malloc(ncap);
			if (!t) {
				snprintf(err, errlen, "out of memory");
				wipe_free(text, cap);
				(void)fclose(f); /* read only */
				return NULL;
			}
			if (text)
				memcpy(t, text, len);
			wipe_free(text, cap);
			text = t;
			cap = ncap;
		}
		memcpy(text + len, buf, n);
		len += n;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	(void)fclose(f); /* read only */
	if (!text || !strstr(text, "-----BEGIN ")) {
		snprintf(err, errlen, "%s: not a PEM file", path);
		wipe_free(text, cap);
		return NULL;
	}
	text[len] = '\0';
	return text;
}

int amtsim_set_tls(struct amtsim *m, const char *cert_file, const char *key_file, char *err,
                   size_t errlen)
{
	char *cert = read_pem(cert_file, err, errlen);
	char *key = cert ? read_pem(key_file, err, errlen) : NULL;

	if (!key) {
		free(cert);
		return -1;
	}
	pthread_mutex_lock(&m->wsman->lock);
	free(m->tls_cert_pem);
	if (m->tls_key_pem)
		wipe_free(m->tls_key_pem, strlen(m->tls_key_pem));
	m->tls_cert_pem = cert;
	m->tls_key_pem = key;
	pthread_mutex_unlock(&m->wsman->lock);
	return 0;
}

bool amtsim_tls_enforced(struct amtsim *m)
{
	return m->p.tls_enforced;
}

int amtsim_check_tls(struct amtsim *m, char *err, size_t errlen)
{
	bool missing;

	if (!m->p.tls_enforced || !m->p.client[AMTSIM_CLIENT_LME].present)
		return 0;
	pthread_mutex_lock(&m->wsman->lock);
	missing = !m->tls_cert_pem || !m->tls_key_pem;
	pthread_mutex_unlock(&m->wsman->lock);
	if (missing) {
		snprintf(err, errlen,
		         "this machine enforces TLS on local ports: WS-Man on 16993 needs "
		         "--tls-cert FILE and --tls-key FILE (or the profile's amt.tls_cert and "
		         "amt.tls_key); tests/amtsim/make-test-certs.sh DIR makes a test pair");
		return -1;
	}
	return 0;
}

int amtsim_serve_lms(struct amtsim *m, uint16_t port, uint16_t *bound, char *err, size_t errlen)
{
	return sim_wsman_serve_lms(m, port, bound, err, errlen);
}
