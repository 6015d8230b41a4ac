/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the emulator core, shared by sim.c (machine, connections, faults), profile.c
 * (loading), amthi_fw.c (the AMTHI firmware side), watchdog_fw.c and stats.c. Not for front
 * ends: they use amtsim.h only.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "amtsim.h"

#define SIM_MAX_VERSIONS   50u /* rpc-go's table holds 50 */
#define SIM_MAX_HASHES     33u
#define SIM_MAX_FW_VER     3u
#define SIM_MAX_FW_STATUS  6u
#define SIM_MAX_FAULTS     64u
#define SIM_MAX_COMMANDS   64u /* distinct AMTHI command codes counted */
#define SIM_NAME_MAX       255u
#define SIM_FAULT_SPEC_MAX 64u

struct sim_client_cfg {
	bool present;
	bool busy; /* connect always answers EBUSY: held by mei_wdt, LMS, ... */
	uint32_t max_msg_length;
	uint8_t protocol_version;
};

struct sim_lan {
	bool present;
	bool enabled;
	uint32_t ipv4; /* host order: 192.0.2.10 == 0xC000020A */
	bool dhcp;
	uint8_t dhcp_mode; /* 0 none (static), 1 active, 2 passive */
	uint8_t link;      /* 1 up, 0 down */
	uint8_t mac[6];
};

struct sim_cert_hash {
	uint32_t handle;
	bool is_default;
	bool is_active;
	uint8_t algorithm;
	uint8_t hash[64];
	size_t hash_len;
	char name[SIM_NAME_MAX + 1];
};

/*
 * A machine as loaded from its profile. The emulator keeps one copy per machine and changes it
 * as firmware would (operational state today; provisioning state in later issues).
 */
struct sim_profile {
	char description[512];
	struct sim_client_cfg client[AMTSIM_CLIENT_COUNT];
	uint8_t watchdog_state; /* IsChangeToAMTEnabled reply byte */

	/* sysfs */
	unsigned fw_ver_count;
	unsigned fw_ver[SIM_MAX_FW_VER][5]; /* platform, major, minor, hotfix, build */
	unsigned fw_status_count;
	uint32_t fw_status[SIM_MAX_FW_STATUS];
	unsigned hbm_major, hbm_minor;
	char kind[32];

	/* AMT (valid when has_amt) */
	bool has_amt;
	bool operational; /* false: AMTHI and LME answer ENOTTY, as with AMT disabled in MEBx */
	char bios_version[65];
	unsigned version_count;
	struct {
		char description[21];
		char version[21];
	} versions[SIM_MAX_VERSIONS];
	uint32_t provisioning_state;
	uint32_t control_mode;
	uint32_t provisioning_mode;
	uint32_t legacy_mode;
	uint8_t uuid[16]; /* wire order */
	uint8_t mac_dedicated[6];
	uint8_t mac_host[6];
	struct sim_lan lan[2];       /* 0 wired, 1 wireless */
	uint32_t no_wireless_status; /* status for index 1 without a wireless adapter; 0: zeros */
	char dns_suffix[SIM_NAME_MAX + 1];
	uint32_t ras_network_status, ras_remote_status, ras_trigger;
	char ras_mps_hostname[SIM_NAME_MAX + 1];
	char power_policy[SIM_NAME_MAX + 1];
	unsigned hash_count;
	struct sim_cert_hash hashes[SIM_MAX_HASHES];
	char lsa_username[33];
	char lsa_password[33];
	unsigned lsa_trailing_pad; /* 0 or 2 bytes after user[33] pass[33] (sources disagree) */

	unsigned fault_count;
	char faults[SIM_MAX_FAULTS][SIM_FAULT_SPEC_MAX];
};

/* Fill P from the JSON file at PATH. 0, or -1 with a one-line ERR naming the key. */
int sim_profile_load(const char *path, struct sim_profile *p, char *err, size_t errlen);

enum sim_fault_kind {
	SIM_FAULT_RESET,
	SIM_FAULT_NO_REPLY,
	SIM_FAULT_TRUNCATE,
	SIM_FAULT_OVERSIZE,
	SIM_FAULT_HUGE,
	SIM_FAULT_WRONG_ECHO,
};

struct sim_fault {
	enum sim_fault_kind kind;
	unsigned at; /* the AMTHI request number it fires on (1-based) */
};

/* One message queued for the host, read in parts when the reader's buffer is short. */
struct sim_msg {
	struct sim_msg *next;
	size_t len;
	size_t off;
	uint8_t data[];
};

struct amtsim_conn {
	struct amtsim *m;
	struct amtsim_conn *next; /* in m->conns, under m->lock */
	enum amtsim_client client;
	uint32_t max_msg_length;

	/*
	 * Replies are queued here by whichever thread produces them (today the sender's, inside
	 * amtsim_send; later an APF handler pushing on its own), and efd polls readable while the
	 * queue is not empty or the connection was reset. Guarded by lock.
	 */
	pthread_mutex_t lock;
	struct sim_msg *head, *tail;
	bool reset;
	bool signalled; /* efd's counter is non-zero */
	int efd;
};

struct sim_command_count {
	uint32_t code;
	unsigned count;
};

struct amtsim {
	pthread_mutex_t lock; /* everything below; taken before any conn->lock */
	struct sim_profile p;
	struct timespec t0;
	struct amtsim_conn *conns;

	/* faults */
	unsigned busy_left;      /* AMTHI connects still to refuse with EBUSY */
	unsigned not_ready_upto; /* AMTHI requests 1..N answer NOT_READY */
	unsigned latency_ms;
	unsigned ready_after_ms;
	unsigned fault_count;
	struct sim_fault faults[SIM_MAX_FAULTS];

	/* counters */
	unsigned amthi_requests;
	struct amtsim_stats stats;
	unsigned command_kinds;
	struct sim_command_count commands[SIM_MAX_COMMANDS];

	/* amtsim_sysfs_attr's answers */
	char attr_fw_ver[128];
	char attr_fw_status[128];
	char attr_hbm_ver[32];
	char attr_kind[40];
	char attr_dev_state[32];
};

/* Queue a message for the host on C (any thread). 0 or ENOMEM. */
int sim_conn_push(struct amtsim_conn *c, const uint8_t *buf, size_t len);

/* Drop every connection of CLIENT (AMTSIM_CLIENT_COUNT: all): a firmware reset. m->lock held. */
void sim_reset_conns(struct amtsim *m, enum amtsim_client client);

/*
 * The AMTHI firmware: answer one request into OUT (the reply before faults are applied).
 * m->lock held. Returns the reply length, 0 when OUT is too small.
 */
size_t sim_amthi_answer(struct amtsim *m, unsigned request_no, const uint8_t *req, size_t len,
			uint8_t *out, size_t cap);

/* The AMTHI command a request carries (0 when it is shorter than the field). */
uint32_t sim_amthi_request_command(const uint8_t *req, size_t len);

/* The name of an AMTHI command code, or NULL when the emulator does not know it. */
const char *sim_amthi_command_name(uint32_t code);

/* The watchdog client: answer one message into OUT; 0 when it gets no reply. m->lock held. */
size_t sim_watchdog_answer(struct amtsim *m, const uint8_t *req, size_t len, uint8_t *out,
			   size_t cap);

const char *sim_client_name(enum amtsim_client client);
