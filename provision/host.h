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
