/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The watchdog client's state-independence query, IsChangeToAMTEnabled (ME 16.1+). These
 * messages carry no PTHI header: the request is four bytes {command 0x05, byte count 0x02,
 * sub-command 0x51, version 0x10}.
 *
 * Reply shapes accepted:
 *   - 1 byte: the state (rpc-go pkg/pthi and current intel/lms read one byte);
 *   - 4 bytes: a u32 whose low byte is the state (older intel/lms parsed a uint32);
 *   - 5 or 8 bytes beginning with an echo of the request header (05 xx 51 10), then the state
 *     byte or u32, the shape of SetAmtOperationalState's reply; defensive, not seen yet.
 * Anything else is a protocol error. Firmware older than ME 16.1 may not answer at all (rpc-go
 * reports a send/receive timeout there); the transport returns that as MEI_E_TIMEOUT.
 */
#include <limits.h>
#include <string.h>

#include "mei.h"
#include "wire.h"

#define SI_COMMAND    0x05u
#define SI_SUBCOMMAND 0x51u
#define SI_VERSION    0x10u
#define SI_ECHO_LEN   4u
#define REPLY_CAP     64u

#define BIT_TRANSITION_ALLOWED 0x01u
#define BIT_AMT_OPERATIONAL    0x02u
#define BIT_RESTRICTED         0x20u
#define BIT_TLS_ON_LOCAL_PORTS 0x40u
#define BIT_NEW_INTERFACE      0x80u

const uint8_t WATCHDOG_IS_CHANGE_TO_AMT_ENABLED[4] = {SI_COMMAND, 0x02, SI_SUBCOMMAND, SI_VERSION};

static int read_state_byte(const uint8_t *buf, size_t len, uint8_t *state)
{
	struct cursor c = cursor_init(buf, len);
	uint8_t cmd, count, sub, ver;

	if (len == SI_ECHO_LEN + 1 || len == SI_ECHO_LEN + 4) {
		if (cur_u8(&c, &cmd) || cur_u8(&c, &count) || cur_u8(&c, &sub) || cur_u8(&c, &ver))
			return MEI_E_PROTOCOL;
		/* The byte count is not checked: sources disagree on what it counts in a reply. */
		if (cmd != SI_COMMAND || sub != SI_SUBCOMMAND || ver != SI_VERSION)
			return MEI_E_PROTOCOL;
	} else if (len != 1 && len != 4) { /* a u8, or a u32 whose low byte is the state */
		return MEI_E_PROTOCOL;
	}
	return cur_u8(&c, state);
}

int watchdog_decode_state(const uint8_t *buf, size_t len, struct amt_state_independence *out)
{
	uint8_t raw;
	int r = read_state_byte(buf, len, &raw);
	bool new_interface;

	if (r != 0)
		return r;
	new_interface = (raw & BIT_NEW_INTERFACE) != 0;
	out->raw = raw;
	out->new_interface = new_interface;
	/* Before ME 16.1 these bits read "disabled" while AMT works (rpc-go #440). */
	out->transition_allowed = new_interface && (raw & BIT_TRANSITION_ALLOWED) != 0;
	out->amt_operational = new_interface && (raw & BIT_AMT_OPERATIONAL) != 0;
	out->restricted = (raw & BIT_RESTRICTED) != 0;
	out->tls_enforced = (raw & BIT_TLS_ON_LOCAL_PORTS) != 0;
	/* rpc-go pkg/amt: new + TLS + restricted with the transition blocked: unprovision first. */
	out->locked = new_interface && out->tls_enforced && out->restricted &&
		      !out->transition_allowed;
	return 0;
}

int watchdog_get_state(struct mei_dev *dev, struct amt_state_independence *out)
{
	uint8_t resp[REPLY_CAP];
	size_t len = 0;
	int r = mei_transact(dev, WATCHDOG_IS_CHANGE_TO_AMT_ENABLED,
			     WATCHDOG_IS_CHANGE_TO_AMT_ENABLED_LEN, resp, sizeof(resp), &len);

	if (r != 0)
		return r;
	return watchdog_decode_state(resp, len, out);
}

#define SI_SET_SUBCOMMAND 0x53u

int watchdog_decode_set_state(const uint8_t *buf, size_t len)
{
	struct cursor c = cursor_init(buf, len);
	uint8_t cmd, count, sub, ver;
	uint32_t status;

	if (cur_u8(&c, &cmd) || cur_u8(&c, &count) || cur_u8(&c, &sub) || cur_u8(&c, &ver) ||
	    cur_u32le(&c, &status) || cur_end(&c))
		return MEI_E_PROTOCOL;
	if (cmd != SI_COMMAND || sub != SI_SET_SUBCOMMAND || ver != SI_VERSION)
		return MEI_E_PROTOCOL;
	if (status > INT_MAX)
		return MEI_E_PROTOCOL;
	return (int)status;
}

int watchdog_set_operational(struct mei_dev *dev, bool enable)
{
	const uint8_t req[5] = {SI_COMMAND, 0x03, SI_SET_SUBCOMMAND, SI_VERSION, enable ? 1 : 0};
	uint8_t resp[REPLY_CAP];
	size_t len = 0;
	int r = mei_transact(dev, req, sizeof(req), resp, sizeof(resp), &len);

	return r != 0 ? r : watchdog_decode_set_state(resp, len);
}
