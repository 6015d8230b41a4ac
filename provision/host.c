/* SPDX-License-Identifier: Apache-2.0 */
#include "host.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
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
