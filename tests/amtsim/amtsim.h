/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amtsim: an emulator of the Intel ME firmware as seen from the host, for tests on machines
 * without AMT. The core here is transport-free and thread-safe; front ends serve it:
 *   - in-process (unit tests call amtsim_connect/amtsim_send/amtsim_recv directly);
 *   - "listen": a Unix SOCK_SEQPACKET socket, the agent's "unix:PATH" device (see the wire
 *     convention below);
 *   - "run": a umockdev testbed whose /dev/mei0 and sysfs tree are served by the core, for any
 *     unmodified MEI client.
 *
 * Unix socket convention (one socket connection == one MEI client connection, like one open fd
 * of /dev/mei0): the client's first message is the 16-byte client GUID (wire order); the server
 * answers one 12-byte message: u32le errno (0 on success; ENOTTY, EBUSY, ENODEV, ...),
 * u32le max_msg_length, u8 protocol_version, 3 reserved zero bytes, and closes the socket if
 * errno != 0. After that, every SEQPACKET message is one MEI message. A firmware reset is the
 * server closing the socket (the client then sees end of file).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AMTSIM_UNIX_CONNECT_REPLY_LEN 12u

enum amtsim_client {
	AMTSIM_CLIENT_AMTHI,
	AMTSIM_CLIENT_LME,
	AMTSIM_CLIENT_WATCHDOG,
	AMTSIM_CLIENT_COUNT,
};

struct amtsim;      /* one emulated machine */
struct amtsim_conn; /* one host connection to one of its ME clients */

/* Load a machine profile (JSON, tests/amtsim/profiles/). On failure NULL and a one-line ERR. */
struct amtsim *amtsim_new(const char *profile_path, char *err, size_t errlen);
/* Every connection must have been closed with amtsim_disconnect first. */
void amtsim_free(struct amtsim *m);

/*
 * Switch on a fault, e.g. "busy=3", "reset@2", "no-reply@1", "truncate@4", "oversize@1",
 * "huge@1", "wrong-echo@3", "not-ready=2", "latency=20", "ready-after=1500". "@N" means the
 * N-th request to the AMTHI client (1-based, counted over the machine's life); faults fire once.
 * The same words are accepted in a profile's "faults" array. Returns 0, or -1 with ERR set.
 * reset@N is a firmware reset: every open connection of the machine (all clients) is reset.
 */
int amtsim_fault(struct amtsim *m, const char *spec, char *err, size_t errlen);

/*
 * sysfs attributes of the emulated mei0, as the kernel prints them: "fw_ver", "fw_status",
 * "hbm_ver", "kind", "dev_state" (no trailing newline; INITIALIZING until ready-after has
 * passed since amtsim_new, then ENABLED). Returns a pointer valid until the next call for the
 * same attribute, or NULL for an unknown one.
 */
const char *amtsim_sysfs_attr(struct amtsim *m, const char *attr);

/*
 * Connect to the client with GUID. Returns 0, or a positive errno as the kernel's ioctl would:
 * ENOTTY (no such client on this machine), EBUSY (held elsewhere, or the busy fault), ENODEV
 * (ME not ready yet).
 */
int amtsim_connect(struct amtsim *m, const uint8_t guid[16], struct amtsim_conn **out,
		   uint32_t *max_msg_length, uint8_t *protocol_version);
void amtsim_disconnect(struct amtsim_conn *c);
enum amtsim_client amtsim_conn_client(const struct amtsim_conn *c);

/*
 * One message from the host. Returns 0, EFBIG (longer than max_msg_length), or ENODEV (the
 * connection was reset by a firmware reset). The reply, if any, is queued for amtsim_recv; the
 * per-message latency is spent inside this call.
 */
int amtsim_send(struct amtsim_conn *c, const uint8_t *buf, size_t len);

/*
 * Take the next queued message for the host. Returns 0 with *len set, EAGAIN when nothing is
 * queued, ENODEV once the connection was reset. A message longer than CAP is returned in parts,
 * the rest on the next call (as the kernel's read does); *more tells whether bytes remain.
 */
int amtsim_recv(struct amtsim_conn *c, uint8_t *buf, size_t cap, size_t *len, bool *more);

/* A descriptor that polls readable while a message is queued or the connection was reset. */
int amtsim_conn_fd(const struct amtsim_conn *c);

/* Counters, for tests and benchmarks. */
struct amtsim_stats {
	unsigned connects[AMTSIM_CLIENT_COUNT]; /* successful connects */
	unsigned refused[AMTSIM_CLIENT_COUNT];  /* connects answered with an errno */
	unsigned messages[AMTSIM_CLIENT_COUNT]; /* messages from the host */
	unsigned long firmware_us;              /* time the emulated firmware spent (latency) */
};
void amtsim_get_stats(struct amtsim *m, struct amtsim_stats *out);

/* Count of requests with this AMTHI command code seen so far. */
unsigned amtsim_command_count(struct amtsim *m, uint32_t command);

/* Write the counters as JSON to PATH, atomically (temp file + rename). 0 or -1. */
int amtsim_write_stats(struct amtsim *m, const char *path);

/* Front ends (main.c parses the command line and calls one of these). */
int amtsim_serve_unix(struct amtsim *m, const char *path, const char *stats_path);
int amtsim_run_umockdev(struct amtsim *m, char *const argv[], const char *stats_path);
