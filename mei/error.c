/* SPDX-License-Identifier: Apache-2.0 */
#include <stddef.h>

#include "mei.h"

/* GUIDs in wire order: the first three fields little-endian, the last eight bytes as written. */
const uint8_t MEI_GUID_AMTHI[16] = {0x28, 0x00, 0xF8, 0x12, 0xB7, 0xB4, 0x2D, 0x4B,
                                    0xAC, 0xA8, 0x46, 0xE0, 0xFF, 0x65, 0x81, 0x4C};
const uint8_t MEI_GUID_LME[16] = {0xDB, 0xA4, 0x33, 0x67, 0x76, 0x04, 0x7B, 0x4E,
                                  0xB3, 0xAF, 0xBC, 0xFC, 0x29, 0xBE, 0xE7, 0xA7};
const uint8_t MEI_GUID_WATCHDOG[16] = {0x6F, 0x9A, 0xB7, 0x05, 0x28, 0x46, 0x7F, 0x4D,
                                       0x89, 0x9D, 0xA9, 0x15, 0x14, 0xCB, 0x32, 0xAB};

static const char *transport_error_name(int r)
{
	switch (r) {
	case MEI_OK:
		return "success";
	case MEI_E_NO_DEVICE:
		return "no MEI device";
	case MEI_E_NOT_READY:
		return "the ME is not ready";
	case MEI_E_NO_CLIENT:
		return "no such ME client";
	case MEI_E_BUSY:
		return "the ME client is busy";
	case MEI_E_RESET:
		return "firmware reset (connection lost)";
	case MEI_E_TOO_BIG:
		return "message too big";
	case MEI_E_TIMEOUT:
		return "no answer from the ME in time";
	case MEI_E_PROTOCOL:
		return "protocol error";
	case MEI_E_ACCESS:
		return "permission denied";
	case MEI_E_IO:
		return "I/O error";
	case MEI_E_NOMEM:
		return "out of memory";
	case MEI_E_REFUSED:
		return "AMT refused the channel";
	default:
		return "unknown MEI error";
	}
}

/* Spelled out in full because the result must be a constant string (no buffers, no state). */
static const char *amthi_status_name(int status)
{
	switch (status) {
	case AMTHI_STATUS_INTERNAL_ERROR:
		return "AMT status 1 (INTERNAL_ERROR)";
	case AMTHI_STATUS_NOT_READY:
		return "AMT status 2 (NOT_READY)";
	case AMTHI_STATUS_INVALID_AMT_MODE:
		return "AMT status 3 (INVALID_AMT_MODE)";
	case AMTHI_STATUS_INVALID_MESSAGE_LENGTH:
		return "AMT status 4 (INVALID_MESSAGE_LENGTH)";
	case AMTHI_STATUS_NOT_PERMITTED:
		return "AMT status 16 (NOT_PERMITTED)";
	case AMTHI_STATUS_MAX_LIMIT_REACHED:
		return "AMT status 23 (MAX_LIMIT_REACHED)";
	case AMTHI_STATUS_INVALID_PARAMETER:
		return "AMT status 36 (INVALID_PARAMETER)";
	case AMTHI_STATUS_RNG_GENERATION_IN_PROGRESS:
		return "AMT status 47 (RNG_GENERATION_IN_PROGRESS)";
	case AMTHI_STATUS_RNG_NOT_READY:
		return "AMT status 48 (RNG_NOT_READY)";
	case AMTHI_STATUS_CERTIFICATE_NOT_READY:
		return "AMT status 49 (CERTIFICATE_NOT_READY)";
	case AMTHI_STATUS_INVALID_HANDLE:
		return "AMT status 2053 (INVALID_HANDLE)";
	case AMTHI_STATUS_NOT_FOUND:
		return "AMT status 2068 (NOT_FOUND)";
	default:
		return "unknown AMT status";
	}
}

const char *mei_strerror(int r)
{
	return r > 0 ? amthi_status_name(r) : transport_error_name(r);
}
