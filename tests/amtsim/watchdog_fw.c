/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The watchdog client's state-independence commands (no PTHI header; PROTOCOL.md section 3):
 *   IsChangeToAMTEnabled   05 02 51 10      -> one byte, the state (rpc-go reads a u8 reply)
 *   SetAmtOperationalState 05 03 53 10 <en> -> the 4-byte command echoed, then u32 status
 * Anything else gets no reply, as the watchdog's own messages (start, stop, ping) do not.
 */
#include <string.h>

#include "mei.h"
#include "sim.h"
#include "wire.h"

#define STATE_NEW_INTERFACE      0x80u
#define STATE_TRANSITION_ALLOWED 0x01u
#define STATE_AMT_OPERATIONAL    0x02u

static const uint8_t set_operational_state[4] = {0x05, 0x03, 0x53, 0x10};

static bool transition_allowed(uint8_t state)
{
	return (state & STATE_NEW_INTERFACE) && (state & STATE_TRANSITION_ALLOWED);
}

/*
 * Enabling or disabling AMT restarts it: its clients disappear (open AMTHI and LME connections
 * are reset) and come back, or not, with the new state.
 */
static uint32_t set_operational(struct amtsim *m, uint8_t enable)
{
	struct sim_profile *p = &m->p;

	if (enable > 1)
		return AMTHI_STATUS_INVALID_PARAMETER;
	if (!transition_allowed(p->watchdog_state) || !p->has_amt)
		return AMTHI_STATUS_NOT_PERMITTED;
	if (p->operational != (enable == 1)) {
		sim_machine_set_operational(m, enable == 1);
		sim_reset_conns(m, AMTSIM_CLIENT_AMTHI);
		sim_reset_conns(m, AMTSIM_CLIENT_LME);
	}
	if (enable)
		p->watchdog_state |= STATE_AMT_OPERATIONAL;
	else
		p->watchdog_state &= (uint8_t)~STATE_AMT_OPERATIONAL;
	return AMTHI_STATUS_SUCCESS;
}

size_t sim_watchdog_answer(struct amtsim *m, const uint8_t *req, size_t len, uint8_t *out,
			   size_t cap)
{
	struct wbuf w = wbuf_init(out, cap);

	if (len == WATCHDOG_IS_CHANGE_TO_AMT_ENABLED_LEN &&
	    memcmp(req, WATCHDOG_IS_CHANGE_TO_AMT_ENABLED, len) == 0) {
		put_u8(&w, m->p.watchdog_state);
	} else if (len == sizeof(set_operational_state) + 1 &&
		   memcmp(req, set_operational_state, sizeof(set_operational_state)) == 0) {
		put_bytes(&w, set_operational_state, sizeof(set_operational_state));
		put_u32le(&w, set_operational(m, req[4]));
	}
	return wbuf_ok(&w) ? w.len : 0;
}
