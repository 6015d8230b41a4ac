/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The firmware side of APF over the LME client, for the emulator: one instance per LME
 * connection (an APF session), with no transport of its own.
 *
 * Plugging it in:
 *   - on connect to the LME client: fw = apf_fw_new(&cfg, &ops), then apf_fw_start(fw);
 *   - for each message the host sends: r = apf_fw_input(fw, msg, len); when r != 0 the session
 *     is over: drop the host's connection (a firmware reset of that connection) and free fw;
 *   - when the host disconnects (or the machine resets): apf_fw_free(fw).
 * Messages for the host leave through ops.send_to_host, one call per MEI message (never longer
 * than cfg.max_msg_length).
 *
 * Services: on a CHANNEL_OPEN to a forwarded port, ops.open_service(ctx, port) returns a
 * connected stream socket whose other end is the service (the emulator hands that end to its
 * WS-Man HTTP server), or -1 to refuse the channel (CHANNEL_OPEN_FAILURE, connect failed). The
 * instance owns the returned socket and closes it with the channel.
 *
 * Threads: apf_fw_new starts one pump thread per instance. It moves service bytes to the host as
 * far as the host's window allows (CHANNEL_DATA of at most max_msg_length - 9 bytes) and host
 * bytes to the services, crediting the host with WINDOW_ADJUST as a service takes them; a
 * service that closes makes it send CHANNEL_CLOSE. So send_to_host is called from the caller's
 * thread (inside apf_fw_start and apf_fw_input) and from the pump thread, under the instance's
 * lock (never two at once); open_service is called only from inside apf_fw_input, with the
 * lock held. Neither may call back into the instance. apf_fw_free joins the pump.
 *
 * What it plays (PROTOCOL.md section 4): PROTOCOL_VERSION (answered, or sent first when
 * version_first), SERVICE_REQUEST "pfwd@amt.intel.com", GLOBAL_REQUEST tcpip-forward for 16992
 * and 623 (16993 and 664 when TLS is enforced), channels to forwarded ports with per-channel
 * windows, about 8 channel slots that are freed only once both sides have said CHANNEL_CLOSE,
 * and, when configured, the end of the whole session after a channel closes (as rpc-go reports).
 * Host messages are validated strictly: a malformed or out-of-order frame, data beyond the
 * window offered, or a message for a channel that does not exist gets DISCONNECT (protocol
 * error) and apf_fw_input returns MEI_E_PROTOCOL.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APF_FW_DEFAULT_MAX_MSG_LENGTH 8192u /* LME's, as rpc-go's hardware tests saw it */
#define APF_FW_DEFAULT_SLOTS          8u

struct apf_fw_config {
	bool tls_enforced;                      /* forward 16993 and 664 instead of 16992 and 623 */
	bool close_session_after_channel_close; /* end the session when a channel is fully closed */
	bool version_first;                     /* send PROTOCOL_VERSION from apf_fw_start */
	bool wsman_port_only;                   /* do not forward the redirection port */
	uint32_t max_msg_length;                /* the LME client's; 0: 8192 */
	uint32_t window;                        /* receive window per channel; 0: 4096 */
	unsigned channel_slots;                 /* 0: 8 */
	uint32_t protocol_major, protocol_minor; /* what it speaks; 0.0 means 1.0 */
	uint8_t uuid[16];                        /* in PROTOCOL_VERSION */

	/* faults */
	uint32_t refuse_open_reason;    /* non-zero: every CHANNEL_OPEN fails with this reason */
	unsigned disconnect_after_data; /* N > 0: DISCONNECT and end after the host's N-th
	                                   CHANNEL_DATA */
	unsigned reset_after_data;      /* N > 0: end (reset) after the host's N-th CHANNEL_DATA */
};

struct apf_fw_ops {
	void *ctx;
	/* Queue one message for the host. Returns 0, or non-zero when it cannot (ignored by the
	 * pump). */
	int (*send_to_host)(void *ctx, const uint8_t *msg, size_t len);
	/* A connected stream socket to the service behind PORT, or -1. May be NULL: all refused. */
	int (*open_service)(void *ctx, uint16_t port);
};

/* apf_fw_input's "the session is over" (not an error). */
#define APF_FW_END 1

struct apf_fw;

/* NULL when out of memory or when the pump thread cannot start. */
struct apf_fw *apf_fw_new(const struct apf_fw_config *cfg, const struct apf_fw_ops *ops);

/* What the firmware says unprompted once the host is connected (PROTOCOL_VERSION when
 * version_first). 0, or the send_to_host failure. */
int apf_fw_start(struct apf_fw *fw);

/*
 * One message from the host. Returns 0 (go on), APF_FW_END (the session is over: the host said
 * DISCONNECT, a fault fired, or a channel closed with close_session_after_channel_close; what
 * was queued before may be delivered or dropped, as a reset would), or MEI_E_PROTOCOL (the
 * host broke the protocol; DISCONNECT was queued; end the session as well).
 */
int apf_fw_input(struct apf_fw *fw, const uint8_t *msg, size_t len);

/* Stop the pump, close every service socket, free. */
void apf_fw_free(struct apf_fw *fw);

struct apf_fw_stats {
	unsigned host_messages;
	unsigned channels_opened;
	unsigned channels_refused;
	unsigned channels_closed; /* slots freed */
	unsigned channels_in_use;
	unsigned host_data_frames;
	unsigned long long host_data_bytes;
	uint32_t host_data_max; /* the largest CHANNEL_DATA payload from the host */
	unsigned fw_data_frames;
	unsigned long long fw_data_bytes;
	uint32_t fw_data_max;
	unsigned window_adjusts_received;
	unsigned window_adjusts_sent;
	unsigned protocol_errors;
	unsigned ports_forwarded; /* tcpip-forward requests the host acknowledged */
	bool handshake_done;      /* the WS-Man port forward was acknowledged */
	char last_error[128];     /* why the last protocol error was declared */
};

void apf_fw_get_stats(struct apf_fw *fw, struct apf_fw_stats *out);
