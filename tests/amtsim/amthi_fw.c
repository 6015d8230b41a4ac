/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The AMTHI (PTHI) client as the firmware plays it: check the request as the firmware does
 * (header, declared length, the command's payload length), then answer with the layouts of
 * PROTOCOL.md section 3. Every answer is a 12-byte header whose command is the request's with
 * bit 23 set, then a u32 status, then the payload on SUCCESS; the header's length counts
 * everything after the header.
 */
#include <string.h>

#include "mei.h"
#include "sim.h"
#include "wire.h"

struct request {
	uint32_t command;
	struct cursor payload; /* the bytes after the header */
};

/* The answer to one request (m->lock held): a status, and the payload in W on SUCCESS. */
typedef uint32_t (*answer_fn)(struct amtsim *m, struct request *req, struct wbuf *w);

static void put_counted(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);

	put_u16le(w, (uint16_t)n);
	put_bytes(w, s, n);
}

static void put_fixed(struct wbuf *w, const char *s, size_t field)
{
	size_t n = strnlen(s, field);

	put_bytes(w, s, n);
	put_zeros(w, field - n);
}

static uint32_t answer_code_versions(struct amtsim *m, struct request *req,
				     struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_fixed(w, p->bios_version, 65);
	put_u32le(w, p->version_count);
	for (unsigned i = 0; i < p->version_count; i++) {
		put_u16le(w, (uint16_t)strlen(p->versions[i].description));
		put_fixed(w, p->versions[i].description, AMTHI_VERSION_STRLEN);
		put_u16le(w, (uint16_t)strlen(p->versions[i].version));
		put_fixed(w, p->versions[i].version, AMTHI_VERSION_STRLEN);
	}
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_provisioning_mode(struct amtsim *m, struct request *req,
					 struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_u32le(w, p->provisioning_mode);
	put_u32le(w, p->legacy_mode);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_provisioning_state(struct amtsim *m, struct request *req,
					  struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_u32le(w, p->provisioning_state);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_control_mode(struct amtsim *m, struct request *req,
				    struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_u32le(w, p->control_mode);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_uuid(struct amtsim *m, struct request *req, struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_bytes(w, p->uuid, sizeof(p->uuid));
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_mac_addresses(struct amtsim *m, struct request *req,
				     struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_bytes(w, p->mac_dedicated, 6);
	put_bytes(w, p->mac_host, 6);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_lan_settings(struct amtsim *m, struct request *req,
				    struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	static const struct sim_lan absent;
	const struct sim_lan *lan;
	uint32_t index;

	if (cur_u32le(&req->payload, &index) < 0 || index > 1)
		return AMTHI_STATUS_INVALID_PARAMETER;
	lan = &p->lan[index];
	if (!lan->present) {
		if (p->no_wireless_status != AMTHI_STATUS_SUCCESS)
			return p->no_wireless_status;
		lan = &absent;
	}
	put_u32le(w, lan->enabled);
	put_u32le(w, sim_lan_ipv4(m, lan));
	put_u32le(w, lan->dhcp);
	put_u8(w, lan->dhcp_mode);
	put_u8(w, lan->link);
	put_bytes(w, lan->mac, 6);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_dns_suffix(struct amtsim *m, struct request *req, struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_counted(w, p->dns_suffix);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_remote_access(struct amtsim *m, struct request *req,
				     struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_u32le(w, p->ras_network_status);
	put_u32le(w, p->ras_remote_status);
	put_u32le(w, p->ras_trigger);
	put_counted(w, p->ras_mps_hostname);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_power_policy(struct amtsim *m, struct request *req,
				    struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_counted(w, p->power_policy);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_hash_handles(struct amtsim *m, struct request *req,
				    struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_u32le(w, p->hash_count);
	for (unsigned i = 0; i < p->hash_count; i++)
		put_u32le(w, p->hashes[i].handle);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_cert_hash(struct amtsim *m, struct request *req, struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	const struct sim_cert_hash *h = NULL;
	uint32_t handle;

	if (cur_u32le(&req->payload, &handle) < 0)
		return AMTHI_STATUS_INVALID_MESSAGE_LENGTH;
	for (unsigned i = 0; i < p->hash_count; i++)
		if (p->hashes[i].handle == handle)
			h = &p->hashes[i];
	if (!h)
		return AMTHI_STATUS_INVALID_HANDLE;
	put_u32le(w, h->is_default);
	put_u32le(w, h->is_active);
	put_bytes(w, h->hash, h->hash_len);
	put_zeros(w, 64 - h->hash_len);
	put_u8(w, h->algorithm);
	put_counted(w, h->name);
	return AMTHI_STATUS_SUCCESS;
}

static uint32_t answer_local_account(struct amtsim *m, struct request *req,
				     struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	(void)req;
	put_fixed(w, p->lsa_username, 33);
	put_fixed(w, p->lsa_password, 33);
	put_zeros(w, p->lsa_trailing_pad);
	return AMTHI_STATUS_SUCCESS;
}

/*
 * Unprovision (u32 mode): client control mode goes back to none, "in" for the settle time, then
 * "pre"; the admin password is forgotten. Admin control mode is refused; an unprovisioned
 * machine answers SUCCESS and nothing changes.
 */
static uint32_t answer_unprovision(struct amtsim *m, struct request *req, struct wbuf *w)
{
	const struct sim_profile *p = &m->p;
	uint32_t mode;

	if (cur_u32le(&req->payload, &mode) < 0)
		return AMTHI_STATUS_INVALID_MESSAGE_LENGTH;
	if (p->control_mode == AMTHI_CONTROL_ACM)
		return AMTHI_STATUS_INVALID_AMT_MODE;
	if (p->control_mode == AMTHI_CONTROL_CCM)
		sim_machine_unprovision(m);
	if (p->unprovision_reply == SIM_UNPROVISION_STATE)
		put_u32le(w, p->provisioning_state);
	return AMTHI_STATUS_SUCCESS;
}

/*
 * StartConfigurationHBased (AMT 19+ with TLS on local ports): pre-provisioning only; AMT goes
 * "in" and waits for mutual TLS with the certificate whose hash it was given. The reply is the
 * algorithm and hash (Hash[64]) of AMT's own TLS certificate (PROTOCOL.md section 3).
 */
static uint32_t answer_start_hbased(struct amtsim *m, struct request *req, struct wbuf *w)
{
	const uint8_t *payload;
	size_t len = req->payload.left;
	uint8_t alg = 0, hash[64] = {0};
	uint32_t status;

	if (cur_ref(&req->payload, &payload, len) < 0)
		return AMTHI_STATUS_INVALID_MESSAGE_LENGTH;
	status = sim_acm_start_hbased(m, payload, len, &alg, hash);
	if (status == AMTHI_STATUS_SUCCESS) {
		put_u8(w, alg);
		put_bytes(w, hash, sizeof(hash));
	}
	return status;
}

/* StopConfiguration: AMT in provisioning ("in", not after Unprovision) goes back to "pre". */
static uint32_t answer_stop_configuration(struct amtsim *m, struct request *req, struct wbuf *w)
{
	(void)req;
	(void)w;
	if (m->p.provisioning_state != AMTHI_PROVISIONING_IN || m->settling)
		return AMTHI_STATUS_INVALID_AMT_MODE;
	sim_machine_stop_configuration(m);
	return AMTHI_STATUS_SUCCESS;
}

struct command {
	uint32_t code;
	const char *name;
	size_t request_len; /* payload bytes the firmware insists on */
	answer_fn answer;   /* NULL: known, not served yet (NOT_PERMITTED) */
};

static const struct command commands[] = {
    {AMTHI_CMD_GET_CODE_VERSIONS, "GetCodeVersions", 0, answer_code_versions},
    {AMTHI_CMD_GET_PROVISIONING_MODE, "GetProvisioningMode", 0, answer_provisioning_mode},
    {AMTHI_CMD_GET_PROVISIONING_STATE, "GetProvisioningState", 0, answer_provisioning_state},
    {AMTHI_CMD_GET_CONTROL_MODE, "GetControlMode", 0, answer_control_mode},
    {AMTHI_CMD_GET_UUID, "GetUUID", 0, answer_uuid},
    {AMTHI_CMD_GET_MAC_ADDRESSES, "GetMacAddresses", 0, answer_mac_addresses},
    {AMTHI_CMD_GET_LAN_INTERFACE_SETTINGS, "GetLANInterfaceSettings", 4, answer_lan_settings},
    {AMTHI_CMD_GET_DNS_SUFFIX, "GetDnsSuffix", 0, answer_dns_suffix},
    {AMTHI_CMD_GET_REMOTE_ACCESS_CONNECTION_STATUS, "GetRemoteAccessConnectionStatus", 0,
     answer_remote_access},
    {AMTHI_CMD_GET_CURRENT_POWER_POLICY, "GetCurrentPowerPolicy", 0, answer_power_policy},
    {AMTHI_CMD_ENUMERATE_HASH_HANDLES, "EnumerateHashHandles", 0, answer_hash_handles},
    {AMTHI_CMD_GET_CERT_HASH_ENTRY, "GetCertHashEntry", 4, answer_cert_hash},
    {AMTHI_CMD_GET_LOCAL_SYSTEM_ACCOUNT, "GetLocalSystemAccount", 40, answer_local_account},
    {AMTHI_CMD_UNPROVISION, "Unprovision", 4, answer_unprovision},
    {AMTHI_CMD_START_CONFIGURATION, "StartConfiguration", 0, NULL},
    {AMTHI_CMD_GET_FQDN, "GetFQDN", 0, NULL},
    {AMTHI_CMD_STOP_CONFIGURATION, "StopConfiguration", 0, answer_stop_configuration},
    {AMTHI_CMD_START_CONFIGURATION_HBASED, "StartConfigurationHBased", AMTHI_HBASED_REQUEST_LEN,
     answer_start_hbased},
};

static const struct command *find_command(uint32_t code)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].code == code)
			return &commands[i];
	return NULL;
}

const char *sim_amthi_command_name(uint32_t code)
{
	const struct command *cmd = find_command(code);

	return cmd ? cmd->name : NULL;
}

uint32_t sim_amthi_request_command(const uint8_t *req, size_t len)
{
	struct cursor c = cursor_init(req, len);
	uint32_t command = 0;

	if (cur_skip(&c, 4) == 0)
		(void)cur_u32le(&c, &command);
	return command;
}

/* Check the header the way the firmware does; a status to refuse it with, or SUCCESS. */
static uint32_t check_header(const uint8_t *buf, size_t len, struct request *req)
{
	struct cursor c = cursor_init(buf, len);
	uint8_t major, minor;
	uint16_t reserved;
	uint32_t length;

	if (cur_u8(&c, &major) < 0 || cur_u8(&c, &minor) < 0 || cur_u16le(&c, &reserved) < 0 ||
	    cur_u32le(&c, &req->command) < 0 || cur_u32le(&c, &length) < 0)
		return AMTHI_STATUS_INVALID_MESSAGE_LENGTH;
	if (length != c.left)
		return AMTHI_STATUS_INVALID_MESSAGE_LENGTH;
	if (major != 1 || minor < 1 || reserved != 0 || (req->command & AMTHI_RESPONSE_BIT))
		return AMTHI_STATUS_NOT_PERMITTED;
	req->payload = c;
	return AMTHI_STATUS_SUCCESS;
}

static size_t finish(struct wbuf *w, uint32_t command, uint32_t status)
{
	struct wbuf h = wbuf_init(w->p, AMTHI_HEADER_LEN + 4);

	if (status != AMTHI_STATUS_SUCCESS)
		w->len = AMTHI_HEADER_LEN + 4; /* a refusal carries the status only */
	if (!wbuf_ok(w))
		return 0;
	put_u8(&h, 1);
	put_u8(&h, 1);
	put_u16le(&h, 0);
	put_u32le(&h, command | AMTHI_RESPONSE_BIT);
	put_u32le(&h, (uint32_t)(w->len - AMTHI_HEADER_LEN));
	put_u32le(&h, status);
	return w->len;
}

size_t sim_amthi_answer(struct amtsim *m, unsigned request_no, const uint8_t *buf, size_t len,
			uint8_t *out, size_t cap)
{
	struct wbuf w = wbuf_init(out, cap);
	struct request req = {0};
	const struct command *cmd;
	uint32_t status;

	put_zeros(&w, AMTHI_HEADER_LEN + 4); /* header and status, written by finish() */
	if (!wbuf_ok(&w))
		return 0;
	req.command = sim_amthi_request_command(buf, len);
	if (request_no <= m->not_ready_upto)
		return finish(&w, req.command, AMTHI_STATUS_NOT_READY);

	status = check_header(buf, len, &req);
	if (status != AMTHI_STATUS_SUCCESS)
		return finish(&w, req.command, status);
	cmd = find_command(req.command);
	if (!cmd || !cmd->answer)
		return finish(&w, req.command, AMTHI_STATUS_NOT_PERMITTED);
	if (req.payload.left != cmd->request_len)
		return finish(&w, req.command, AMTHI_STATUS_INVALID_MESSAGE_LENGTH);
	sim_machine_refresh(m);
	status = cmd->answer(m, &req, &w);
	return finish(&w, req.command, status);
}
