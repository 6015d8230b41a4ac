/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The state directory's record: the input is the JSON file DIR/UUID.json that state_load reads
 * (a file another process, or a previous run that was cut short, may have left behind).
 * Properties: 0, 1 or -1 only; on success the fields are terminated, the UUID is the one asked
 * for; on failure the record holds no byte (the password is a secret) and WHY is one terminated
 * line.
 */
#include "fuzz.h"
#include "state.h"

#define UUID "6c3fcf6e-fdee-41bf-8caf-5d4920d19618"

static char record_path[128];

static void remove_file(void)
{
	unlink(record_path);
	rmdir(fuzz_scratch_dir());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state_record *rec = fuzz_alloc(sizeof(*rec));
	char why[256];
	int r;

	if (!record_path[0]) {
		snprintf(record_path, sizeof(record_path), "%s/" UUID ".json", fuzz_scratch_dir());
		if (atexit(remove_file) != 0)
			abort();
	}
	fuzz_put_file(record_path, data, size);
	memset(rec, 0x55, sizeof(*rec));
	why[0] = '\0';
	r = state_load(fuzz_scratch_dir(), UUID, rec, why, sizeof(why));
	FUZZ_CHECK(r == 0 || r == -1);
	if (r == 0) {
		FUZZ_CHECK(fuzz_terminated(rec->uuid, sizeof(rec->uuid)) &&
		           strcmp(rec->uuid, UUID) == 0);
		FUZZ_CHECK(fuzz_terminated(rec->user, sizeof(rec->user)));
		FUZZ_CHECK(fuzz_terminated(rec->password, sizeof(rec->password)));
		FUZZ_CHECK(fuzz_terminated(rec->status, sizeof(rec->status)));
	} else {
		FUZZ_CHECK(fuzz_all_zero(rec, sizeof(*rec)));
		FUZZ_CHECK(fuzz_terminated(why, sizeof(why)) && why[0] && fuzz_one_line(why));
	}
	state_record_wipe(rec);
	free(rec);
	return 0;
}
