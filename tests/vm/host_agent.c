/* SPDX-License-Identifier: MIT */
/*
 * kvfpga-vm-agent: the host's hand on the stand-in cards while a test VM
 * runs.  The guest asks through files in the shared results folder:
 *   req-<id>:  "<slot> plant|verify <offset> <length> <seed>"
 * and the agent answers in ack-<id>: "ok" or "fail <why>".  "plant" writes
 * the pattern (pattern.h) into the card's backing file at the card offset;
 * "verify" checks that the guest's bytes landed there.  It is how a test
 * proves that a guest mapping reaches card memory and nothing else.
 *
 * usage: kvfpga-vm-agent OUTDIR SLOT=FILE...
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

struct card {
	const char *slot;
	const char *path;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int serve(const struct card *cards, int ncards, const char *req, char *ans, size_t anslen)
{
	char slot[64], op[16];
	uint64_t off, len, seed;
	const struct card *card = NULL;
	struct stat st;
	uint8_t *map;
	size_t bad;
	int fd;

	if (sscanf(req, "%63s %15s %" SCNu64 " %" SCNu64 " %" SCNu64, slot, op, &off, &len,
	           &seed) != 5) {
		snprintf(ans, anslen, "fail malformed request");
		return 0;
	}
	for (int i = 0; i < ncards; i++)
		if (!strcmp(cards[i].slot, slot))
			card = &cards[i];
	if (!card) {
		snprintf(ans, anslen, "fail unknown slot %s", slot);
		return 0;
	}
	fd = open(card->path, O_RDWR);
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(ans, anslen, "fail open %s: %s", card->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (len == 0 || off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off) {
		snprintf(ans, anslen, "fail range %" PRIu64 "+%" PRIu64 " outside card", off, len);
		close(fd);
		return 0;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		snprintf(ans, anslen, "fail mmap: %s", strerror(errno));
		return 0;
	}
	if (!strcmp(op, "plant")) {
		vm_pattern_fill(map + off, (size_t)len, seed);
		msync(map, (size_t)st.st_size, MS_SYNC);
		snprintf(ans, anslen, "ok");
	} else if (!strcmp(op, "verify")) {
		bad = vm_pattern_check(map + off, (size_t)len, seed);
		if (bad == len)
			snprintf(ans, anslen, "ok");
		else
			snprintf(ans, anslen,
			         "fail byte %zu of %" PRIu64 "+%" PRIu64 " is %#x, want %#x", bad,
			         off, len, map[off + bad], vm_pattern_byte(seed, bad));
	} else {
		snprintf(ans, anslen, "fail unknown op %s", op);
	}
	munmap(map, (size_t)st.st_size);
	return 0;
}

int main(int argc, char **argv)
{
	struct card cards[16];
	int ncards = 0;
	const char *outdir;

	if (argc < 3) {
		fprintf(stderr, "usage: kvfpga-vm-agent OUTDIR SLOT=FILE...\n");
		return 2;
	}
	outdir = argv[1];
	for (int i = 2; i < argc && ncards < 16; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq) {
			fprintf(stderr, "kvfpga-vm-agent: bad card '%s'\n", argv[i]);
			return 2;
		}
		*eq = '\0';
		cards[ncards].slot = argv[i];
		cards[ncards].path = eq + 1;
		ncards++;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	while (!stop_requested) {
		DIR *dir = opendir(outdir);
		struct dirent *de;
		struct timespec nap = { 0, 20 * 1000 * 1000 };

		if (!dir) {
			perror("kvfpga-vm-agent: opendir");
			return 1;
		}
		while ((de = readdir(dir))) {
			char path[4096], ack[4096], tmp[4200], req[512], ans[512];
			FILE *f;
			size_t n;

			if (strncmp(de->d_name, "req-", 4))
				continue;
			snprintf(path, sizeof(path), "%s/%s", outdir, de->d_name);
			snprintf(ack, sizeof(ack), "%s/ack-%s", outdir, de->d_name + 4);
			if (access(ack, F_OK) == 0)
				continue;
			f = fopen(path, "r");
			if (!f)
				continue;
			n = fread(req, 1, sizeof(req) - 1, f);
			fclose(f);
			req[n] = '\0';
			if (!strchr(req, '\n'))
				continue; /* still being written */
			serve(cards, ncards, req, ans, sizeof(ans));
			snprintf(tmp, sizeof(tmp), "%s.tmp", ack);
			f = fopen(tmp, "w");
			if (!f)
				continue;
			fprintf(f, "%s\n", ans);
			fclose(f);
			rename(tmp, ack);
			unlink(path);
		}
		closedir(dir);
		nanosleep(&nap, NULL);
	}
	return 0;
}
