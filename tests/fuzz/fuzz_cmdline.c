/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel command line: the input is /proc/cmdline. cloud-config-url= (into a URL buffer, and
 * into one too small for most), BOOTIF= (the boot MAC), the URL as it would appear in a message,
 * and host_facts_read, which reads the command line from a file. Properties: the values fit and
 * are terminated; quotes are gone from a value; a found MAC is aa:bb:cc:dd:ee:ff in lower case
 * and comes first among the host's MACs; a URL for a message is printable.
 */
#include <ctype.h>

#include "fuzz.h"
#include "handoff.h"
#include "host.h"
#include "http.h"

#define URL_CAP 512

static char cmdline_path[128];

static void remove_file(void)
{
	unlink(cmdline_path);
	rmdir(fuzz_scratch_dir());
}

static bool is_mac(const char *mac)
{
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (mac[i] != ':')
				return false;
		} else if (!isxdigit((unsigned char)mac[i]) || isupper((unsigned char)mac[i])) {
			return false;
		}
	}
	return mac[17] == '\0';
}

static void host_facts(const char *text, const char *mac)
{
	struct host_facts *h = fuzz_alloc(sizeof(*h));

	if (!cmdline_path[0]) {
		snprintf(cmdline_path, sizeof(cmdline_path), "%s/cmdline", fuzz_scratch_dir());
		if (atexit(remove_file) != 0)
			abort();
	}
	fuzz_put_file(cmdline_path, text, strlen(text));
	host_facts_read(cmdline_path, h);
	FUZZ_CHECK(h->mac_count <= HOST_MAX_MACS);
	for (unsigned i = 0; i < h->mac_count; i++)
		FUZZ_CHECK(fuzz_terminated(h->macs[i], sizeof(h->macs[i])));
	/* the boot MAC first, unless the host has that many interfaces (none do here) */
	if (mac && h->mac_count < HOST_MAX_MACS)
		FUZZ_CHECK(strcmp(h->macs[0], mac) == 0);
	free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size);
	char *url = fuzz_alloc(URL_CAP), *small = fuzz_alloc(8), *msg = fuzz_alloc(256);
	char mac[18];
	bool found;

	found = cmdline_cloud_config_url(text, url, URL_CAP);
	FUZZ_CHECK(fuzz_terminated(url, URL_CAP));
	if (found) {
		FUZZ_CHECK(url[0] != '\0' && strchr(url, '"') == NULL);
		http_url_for_message(url, msg, 256);
		FUZZ_CHECK(fuzz_terminated(msg, 256) && fuzz_printable(msg));
	} else {
		FUZZ_CHECK(url[0] == '\0');
	}
	found = cmdline_cloud_config_url(text, small, 8);
	FUZZ_CHECK(fuzz_terminated(small, 8));
	FUZZ_CHECK(found == (small[0] != '\0'));

	found = cmdline_bootif(text, mac);
	FUZZ_CHECK(!found || is_mac(mac));
	FUZZ_CHECK(found || mac[0] == '\0');
	/* host_facts_read asks the kernel for interfaces: only when there is a BOOTIF to find */
	if (strstr(text, "BOOTIF="))
		host_facts(text, found && strlen(text) < 4096 ? mac : NULL);
	free(text);
	free(url);
	free(small);
	free(msg);
	return 0;
}
