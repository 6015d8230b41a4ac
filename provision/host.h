/* SPDX-License-Identifier: Apache-2.0 */
/* Facts about the host's own network interfaces (internal to provision/). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Find the interface whose MAC is MAC and its first IPv4. IFNAME and IPV4 become "" when there
 * is no such interface or it has no IPv4. Returns 0, or -1 when the interfaces cannot be listed.
 */
int host_iface_by_mac(const uint8_t mac[6], char *ifname, size_t ifname_cap, char *ipv4,
		      size_t ipv4_cap);

#define HOST_MAX_MACS 16

struct host_facts {
	char hostname[256];
	char architecture[32]; /* MAAS form: "amd64/generic" */
	unsigned mac_count;
	char macs[HOST_MAX_MACS][18]; /* the boot MAC (BOOTIF=) first */
};

/*
 * Hostname, architecture and the MACs of the host's Ethernet interfaces (loopback and
 * all-zero MACs left out), the one named by BOOTIF= on the kernel command line in CMDLINE_PATH
 * (normally /proc/cmdline) first.
 */
void host_facts_read(const char *cmdline_path, struct host_facts *h);

/* MAAS's architecture name for a uname machine string ("x86_64" -> "amd64/generic"). */
const char *host_maas_architecture(const char *machine);
