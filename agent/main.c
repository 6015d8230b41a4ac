/* SPDX-License-Identifier: Apache-2.0 */
#include <curl/curl.h>
#include <stdio.h>

#include "agent.h"

int main(int argc, char **argv)
{
	int r;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		(void)fputs("amt-enlist: libcurl cannot be initialised\n", stderr);
		return EXIT_INTERNAL;
	}
	r = agent_main(argc, argv);
	curl_global_cleanup();
	return r;
}
