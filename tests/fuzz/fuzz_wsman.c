/* SPDX-License-Identifier: Apache-2.0 */
/*
 * WS-Man replies from AMT's web server: the input is an HTTP body. wsman_parse_reply, then what
 * activation reads from a reply (DigestRealm, Enabled, ReturnValue, an enumeration's context and
 * items with their ElementName and InstanceID). Properties: the documented
 * codes only, with err->code equal to the result and err->msg one terminated line; a document
 * only on success, a SOAP 1.2 Envelope with a Body, with no document type declaration and no
 * entity anywhere in it (SOAP forbids a DTD; an entity would mean one was expanded); texts
 * found fit their buffers.
 */
#include <libxml/parser.h>

#include "fuzz.h"
#include "wsman.h"

static bool has_entity(xmlNodePtr n)
{
	for (; n; n = n->next) {
		if (n->type == XML_ENTITY_REF_NODE || n->type == XML_ENTITY_NODE ||
		    n->type == XML_ENTITY_DECL || n->type == XML_DTD_NODE)
			return true;
		if (n->type == XML_ELEMENT_NODE && has_entity(n->children))
			return true;
	}
	return false;
}

static void read_text(xmlDocPtr doc, const char *name, size_t cap)
{
	char *out = fuzz_alloc(cap);
	int r = wsman_body_text(doc, name, out, cap);

	FUZZ_CHECK(r == 0 || r == WSMAN_E_PARSE);
	if (r == 0)
		FUZZ_CHECK(strlen(out) < cap);
	free(out);
}

static void read_item(xmlNodePtr item, void *ctx)
{
	char name[128], id[128];
	int r = wsman_node_text(item, "ElementName", name, sizeof(name));

	FUZZ_CHECK(r == 0 || r == WSMAN_E_PARSE);
	r = wsman_node_text(item, "InstanceID", id, sizeof(id));
	FUZZ_CHECK(r == 0 || r == WSMAN_E_PARSE);
	(*(unsigned *)ctx)++;
}

static void read_enumeration(xmlDocPtr doc)
{
	char context[WSMAN_CONTEXT_MAX];
	unsigned items = 0;
	bool end = false;
	int r = wsman_enumeration_context(doc, context, sizeof(context));

	FUZZ_CHECK(r == WSMAN_E_PARSE || (r == 0 && context[0] && strlen(context) < sizeof(context)));
	r = wsman_pull_items(doc, read_item, &items, &end);
	FUZZ_CHECK(r == 0 || (r == WSMAN_E_PARSE && items == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wsman_error err;
	static xmlDoc sentinel;
	xmlDocPtr doc = &sentinel; /* must be overwritten */
	unsigned rv;
	int r;

	memset(&err, 0x55, sizeof(err));
	r = wsman_parse_reply((const char *)data, size, &doc, &err);
	FUZZ_CHECK(r == 0 || r == WSMAN_E_PARSE || r == WSMAN_E_FAULT);
	if (r != 0) {
		FUZZ_CHECK(doc == NULL);
		FUZZ_CHECK(err.code == r);
		FUZZ_CHECK(fuzz_terminated(err.msg, sizeof(err.msg)));
		FUZZ_CHECK(fuzz_one_line(err.msg));
		return 0;
	}
	FUZZ_CHECK(doc != NULL);
	FUZZ_CHECK(doc->intSubset == NULL && doc->extSubset == NULL);
	FUZZ_CHECK(!has_entity(doc->children));
	read_text(doc, "DigestRealm", 128);
	read_text(doc, "Enabled", 16);
	read_text(doc, "ReturnValue", 1);
	r = wsman_return_value(doc, &rv);
	FUZZ_CHECK(r == 0 || r == WSMAN_E_PARSE);
	read_enumeration(doc);
	xmlFreeDoc(doc);
	return 0;
}
