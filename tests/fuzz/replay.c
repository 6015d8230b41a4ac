/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fuzz targets without libFuzzer: run LLVMFuzzerTestOneInput once over every file of the
 * corpus directories (and files) named on the command line, each input in a heap buffer of
 * exactly its size, so that the normal and the sanitizer builds replay the committed corpus as
 * unit tests. A crash, a sanitizer report or a broken property ends the run on that input, whose
 * name -v prints before it runs; an empty or missing corpus is a failure (a corpus that went
 * missing must not pass silently).
 *
 *   fuzz-replay-TARGET [-v] PATH...
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Replay inputs are small; a file this large is not one of ours. */
#define INPUT_MAX ((size_t)16 * 1024 * 1024)

static bool verbose;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf, *exact;
	size_t len;

	if (!f) {
		perror(path);
		return -1;
	}
	buf = fuzz_alloc(INPUT_MAX);
	len = fread(buf, 1, INPUT_MAX, f);
	if (ferror(f) || !feof(f)) {
		fprintf(stderr, "%s: unreadable or larger than %zu bytes\n", path, INPUT_MAX);
		(void)fclose(f);
		free(buf);
		return -1;
	}
	(void)fclose(f);
	exact = fuzz_dup(buf, len);
	free(buf);
	/* named before it runs: after a crash, the last line names the input */
	if (verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of DIR, in name order (a stable order makes failures reproducible). */
static int run_dir(const char *dir, unsigned *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (!d) {
		perror(dir);
		return -1;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			names = realloc(names, cap * sizeof(*names));
			if (!names)
				abort();
		}
		names[n] = strdup(e->d_name);
		if (!names[n++])
			abort();
	}
	closedir(d);
	if (n > 0) /* names is NULL when there are none */
		qsort(names, n, sizeof(*names), compare_names);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (run_file(path) < 0)
				r = -1;
			else
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int r = 0, first = 1;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		verbose = true;
		first = 2;
	}
	if (first >= argc) {
		fprintf(stderr, "usage: %s [-v] CORPUS_DIR_OR_FILE...\n", argv[0]);
		return 2;
	}
	for (int i = first; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			r = -1;
		} else if (S_ISDIR(st.st_mode)) {
			if (run_dir(argv[i], &count) < 0)
				r = -1;
		} else if (run_file(argv[i]) == 0) {
			count++;
		} else {
			r = -1;
		}
	}
	fprintf(stderr, "replay: %u inputs\n", count);
	if (count == 0) {
		fprintf(stderr, "replay: no inputs: is the corpus missing?\n");
		return 1;
	}
	return r < 0 ? 1 : 0;
}
