/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The state directory (internal to provision/): one JSON file per AMT, named by its UUID, mode
 * 0600, written atomically (temp file, fsync, rename, fsync of the directory). It holds the
 * admin password (and, for admin control mode, the MEBx password) from before AMT is set to
 * them, so a rerun can find them, check the admin password against AMT and hand them off again.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct state_record {
	char uuid[37];
	char user[33];
	char password[33]; /* secret */
	char mebx_password[33]; /* secret; "" when none (client control mode), and in older files */
	char status[16];   /* "pending" before Setup, "activated" once AMT accepted it */
};

/* Create DIR (mode 0700) if needed. 0, or -1 with WHY. */
int state_dir_prepare(const char *dir, char *why, size_t why_cap);

/*
 * One run at a time per state directory (a cloud-init runcmd and the systemd unit may start
 * together): an exclusive flock on DIR/.lock, waited for up to WAIT_MS. 0 with *FD held (give
 * it to state_unlock); 1 when another process held it all that time; -1 with WHY when the lock
 * file cannot be opened.
 */
#define STATE_LOCK_NAME ".lock"
int state_lock(const char *dir, int wait_ms, int *fd, char *why, size_t why_cap);
void state_unlock(int fd);

/* False for tmpfs, ramfs and overlays (what live roots put over a tmpfs): gone after a reboot. */
bool state_dir_is_persistent(const char *dir);

int state_save(const char *dir, const struct state_record *rec, char *why, size_t why_cap);

/* 0; 1 when there is no record for UUID; -1 with WHY when the file is unreadable or malformed. */
int state_load(const char *dir, const char *uuid, struct state_record *rec, char *why,
	       size_t why_cap);

/* 0 (also when there was none), or -1 with WHY. */
int state_remove(const char *dir, const char *uuid, char *why, size_t why_cap);

/* Wipe a record's secrets. */
void state_record_wipe(struct state_record *rec);
