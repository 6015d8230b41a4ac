/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The watchdog client's replies: IsChangeToAMTEnabled (state independence) and
 * SetAmtOperationalState. Properties: the documented return values only; the derived flags
 * agree with the raw byte (bits 0 and 1 mean nothing without bit 7; locked only with the new
 * interface, TLS and restricted set and the transition blocked).
 */
#include "fuzz.h"
#include "mei.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct amt_state_independence si;
	int r = watchdog_decode_state(data, size, &si);

	FUZZ_CHECK(r == 0 || r == MEI_E_PROTOCOL);
	if (r == 0) {
		bool is_new = (si.raw & 0x80) != 0;

		FUZZ_CHECK(si.new_interface == is_new);
		FUZZ_CHECK(si.transition_allowed == (is_new && (si.raw & 0x01)));
		FUZZ_CHECK(si.amt_operational == (is_new && (si.raw & 0x02)));
		FUZZ_CHECK(si.restricted == ((si.raw & 0x20) != 0));
		FUZZ_CHECK(si.tls_enforced == ((si.raw & 0x40) != 0));
		FUZZ_CHECK(!si.locked ||
		           (is_new && si.tls_enforced && si.restricted && !si.transition_allowed));
	}
	r = watchdog_decode_set_state(data, size);
	FUZZ_CHECK(r == 0 || r == MEI_E_PROTOCOL || r > 0);
	return 0;
}
