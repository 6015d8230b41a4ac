/* SPDX-License-Identifier: Apache-2.0 */
#include "host.h"

#include "handoff.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdbool.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const char *iface_with_mac(const struct ifaddrs *list, const uint8_t mac[6])
{
	for (const struct ifaddrs *a = list; a; a = a->ifa_next) {
		const struct sockaddr_ll *ll = (const void *)a->ifa_addr;

		if (!a->ifa_addr || a->ifa_addr->sa_family != AF_PACKET || ll->sll_halen != 6)
			continue;
		if (memcmp(ll->sll_addr, mac, 6) == 0)
			return a->ifa_name;
	}
	return NULL;
}

int host_iface_by_mac(const uint8_t mac[6], char *ifname, size_t ifname_cap, char *ipv4,
		      size_t ipv4_cap)
{
	struct ifaddrs *list;
	const char *name;

	ifname[0] = '\0';
	ipv4[0] = '\0';
	if (getifaddrs(&list) < 0)
		return -1;
	name = iface_with_mac(list, mac);
	if (name) {
		snprintf(ifname, ifname_cap, "%s", name);
		for (const struct ifaddrs *a = list; a; a = a->ifa_next) {
			const struct sockaddr_in *in = (const void *)a->ifa_addr;

			if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET ||
			    strcmp(a->ifa_name, name) != 0)
				continue;
			if (inet_ntop(AF_INET, &in->sin_addr, ipv4, (socklen_t)ipv4_cap))
				break;
			ipv4[0] = '\0';
		}
	}
	freeifaddrs(list);
	return 0;
}

const char *host_maas_architecture(const char *machine)
{
	static const struct {
		const char *uname;
		const char *maas;
	} map[] = {
		{"x86_64", "amd64/generic"}, {"aarch64", "arm64/generic"},
		{"i686", "i386/generic"},    {"i386", "i386/generic"},
		{"ppc64le", "ppc64el/generic"}, {"s390x", "s390x/generic"},
		{"riscv64", "riscv64/generic"},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(machine, map[i].uname) == 0)
			return map[i].maas;
	return NULL;
}

/* Add MAC once; FIRST puts it (or moves it, when the host has it already) at the front. */
static void add_mac(struct host_facts *h, const char *mac, bool first)
{
	unsigned at = h->mac_count;

	for (unsigned i = 0; i < h->mac_count; i++)
		if (strcmp(h->macs[i], mac) == 0)
			at = i;
	if (at == h->mac_count) {
		if (h->mac_count == HOST_MAX_MACS)
			return;
		snprintf(h->macs[h->mac_count++], sizeof(h->macs[0]), "%s", mac);
	}
	if (first && at > 0) {
		char keep[18];

		memcpy(keep, h->macs[at], sizeof(keep));
		memmove(h->macs[1], h->macs[0], sizeof(h->macs[0]) * at);
		memcpy(h->macs[0], keep, sizeof(keep));
	}
}

static void read_cmdline(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	size_t n = 0;

	buf[0] = '\0';
	if (!f)
		return;
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	(void)fclose(f); /* read-only: nothing to lose */
}

void host_facts_read(const char *cmdline_path, struct host_facts *h)
{
	struct ifaddrs *list, *a;
	struct utsname u;
	char cmdline[4096], boot[18];
	const char *arch;

	memset(h, 0, sizeof(*h));
	if (gethostname(h->hostname, sizeof(h->hostname) - 1) < 0)
		h->hostname[0] = '\0';
	arch = uname(&u) == 0 ? host_maas_architecture(u.machine) : NULL;
	snprintf(h->architecture, sizeof(h->architecture), "%s", arch ? arch : "unknown");
	if (getifaddrs(&list) == 0) {
		for (a = list; a; a = a->ifa_next) {
			const struct sockaddr_ll *ll = (const void *)a->ifa_addr;
			static const uint8_t zero[6];
			char mac[18];

			if (!a->ifa_addr || a->ifa_addr->sa_family != AF_PACKET ||
			    ll->sll_halen != 6 || (a->ifa_flags & IFF_LOOPBACK) ||
			    memcmp(ll->sll_addr, zero, 6) == 0)
				continue;
			snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", ll->sll_addr[0],
				 ll->sll_addr[1], ll->sll_addr[2], ll->sll_addr[3], ll->sll_addr[4],
				 ll->sll_addr[5]);
			add_mac(h, mac, false);
		}
		freeifaddrs(list);
	}
	read_cmdline(cmdline_path, cmdline, sizeof(cmdline));
	if (cmdline_bootif(cmdline, boot))
		add_mac(h, boot, true);
}
