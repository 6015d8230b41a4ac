/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Counters, read by tests and written as JSON for the integration runner and benchmarks:
 *   {"clients": {"amthi": {"connects": 1, "refused": 0, "messages": 14,
 *                          "commands": {"GetCodeVersions": 1, ...}},
 *                "lme": {"connects": 1, "refused": 0, "messages": 40, "handshakes": 1,
 *                        "channels": 3, "channels_refused": 0, "protocol_errors": 0,
 *                        "disconnects": 0},
 *                "watchdog": {...}},
 *    "wsman": {"requests": 5, "authenticated": 3, "unauthorized": 2, "faults": 0,
 *              "Get": 2, "Setup": 1, ...},
 *    "machine": {"control_mode": "ccm", "provisioning_state": "post", "admin_password": true},
 *    "amthi_requests": 14, "firmware_ms": 0.0}
 * An AMTHI command the emulator does not know is named by its code ("0x04000099"); WS-Man
 * methods are counted by name ("Get" for every Transfer Get) once the request authenticated.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"

void amtsim_get_stats(struct amtsim *m, struct amtsim_stats *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->stats;
	sim_live_apf_stats(m, out);
	pthread_mutex_unlock(&m->lock);
}

unsigned amtsim_command_count(struct amtsim *m, uint32_t command)
{
	unsigned n = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->command_kinds; i++)
		if (m->commands[i].code == command)
			n = m->commands[i].count;
	pthread_mutex_unlock(&m->lock);
	return n;
}

static void add_count(json_object *o, const char *key, unsigned n)
{
	json_object_object_add(o, key, json_object_new_int64(n));
}

static json_object *client_json(const struct amtsim *m, const struct amtsim_stats *st,
				enum amtsim_client client)
{
	json_object *o = json_object_new_object();

	add_count(o, "connects", st->connects[client]);
	add_count(o, "refused", st->refused[client]);
	add_count(o, "messages", st->messages[client]);
	if (client == AMTSIM_CLIENT_LME) {
		add_count(o, "handshakes", st->apf_handshakes);
		add_count(o, "channels", st->apf_channels);
		add_count(o, "channels_refused", st->apf_channels_refused);
		add_count(o, "protocol_errors", st->apf_protocol_errors);
		add_count(o, "disconnects", st->apf_disconnects);
	}
	if (client == AMTSIM_CLIENT_AMTHI) {
		json_object *cmds = json_object_new_object();

		for (unsigned i = 0; i < m->command_kinds; i++) {
			const char *name = sim_amthi_command_name(m->commands[i].code);
			char code[16];

			if (!name) {
				snprintf(code, sizeof(code), "0x%08X",
					 (unsigned)m->commands[i].code);
				name = code;
			}
			json_object_object_add(cmds, name,
					       json_object_new_int64(m->commands[i].count));
		}
		json_object_object_add(o, "commands", cmds);
	}
	return o;
}

static json_object *wsman_json(const struct amtsim *m, const struct amtsim_stats *st)
{
	json_object *o = json_object_new_object();

	add_count(o, "requests", st->wsman_requests);
	add_count(o, "authenticated", st->wsman_authenticated);
	add_count(o, "unauthorized", st->wsman_unauthorized);
	add_count(o, "faults", st->wsman_faults);
	for (unsigned i = 0; i < m->method_kinds; i++)
		add_count(o, m->methods[i].name, m->methods[i].count);
	return o;
}

static json_object *machine_json(const struct amtsim *m)
{
	static const char *const modes[] = {"none", "ccm", "acm"};
	static const char *const states[] = {"pre", "in", "post"};
	json_object *o = json_object_new_object();

	json_object_object_add(o, "control_mode",
			       json_object_new_string(modes[m->p.control_mode % 3]));
	json_object_object_add(o, "provisioning_state",
			       json_object_new_string(states[m->p.provisioning_state % 3]));
	json_object_object_add(o, "admin_password",
			       json_object_new_boolean(m->admin_ha1[0] != '\0'));
	return o;
}

static json_object *stats_json(struct amtsim *m)
{
	json_object *root = json_object_new_object();
	json_object *clients = json_object_new_object();
	struct amtsim_stats st;

	pthread_mutex_lock(&m->lock);
	sim_machine_refresh(m);
	st = m->stats;
	sim_live_apf_stats(m, &st);
	for (int c = 0; c < AMTSIM_CLIENT_COUNT; c++)
		json_object_object_add(clients, sim_client_name(c), client_json(m, &st, c));
	json_object_object_add(root, "clients", clients);
	json_object_object_add(root, "wsman", wsman_json(m, &st));
	json_object_object_add(root, "machine", machine_json(m));
	json_object_object_add(root, "amthi_requests", json_object_new_int64(m->amthi_requests));
	json_object_object_add(root, "firmware_ms",
			       json_object_new_double((double)m->stats.firmware_us / 1000.0));
	pthread_mutex_unlock(&m->lock);
	return root;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int amtsim_write_stats(struct amtsim *m, const char *path)
{
	json_object *root = stats_json(m);
	const char *text =
	    json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						     JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t tlen = strlen(path) + sizeof(".XXXXXX");
	char *tmp = malloc(tlen);
	int fd = -1, r = -1;

	if (!tmp)
		goto out;
	snprintf(tmp, tlen, "%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		goto out;
	if (write_all(fd, text, strlen(text)) == 0 && write_all(fd, "\n", 1) == 0 &&
	    fchmod(fd, 0644) == 0) {
		int closed = close(fd);

		fd = -1;
		if (closed == 0 && rename(tmp, path) == 0)
			r = 0;
	}
	if (r < 0)
		unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	free(tmp);
	json_object_put(root);
	return r;
}
