// SPDX-License-Identifier: MIT
/*
 * kvfpga-info: which kvfpga device libkvfpga uses here, and what it holds.
 * The first line always names the device (a card, or the host-memory
 * emulation); errors are one line on stderr and a non-zero exit.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvfpga/kvfpga.h"
#include "kvfpga_accel.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: kvfpga-info [--device SPEC] [--emu-mem SIZE] [--list]\n"
	             "Print the kvfpga device libkvfpga selects (first line), then its details.\n"
	             "\n"
	             "  -d, --device SPEC   auto | emulated | card | <N> | <pci slot> | /dev/...\n"
	             "                      (default: $KVFPGA_DEVICE, else a card if any, else "
	             "emulation)\n"
	             "  -m, --emu-mem SIZE  emulated card size, <bytes>[K|M|G|T] (default: "
	             "$KVFPGA_EMU_MEM,\n"
	             "                      else 1G)\n"
	             "  -l, --list          also list every kvfpga card found\n"
	             "  -h, --help          this text\n");
}

static void print_size(const char *label, uint64_t bytes)
{
	printf("%-13s %" PRIu64 " bytes", label, bytes);
	if (bytes && bytes % (1ULL << 20) == 0)
		printf(" (%" PRIu64 " MiB)", bytes >> 20);
	else if (bytes && bytes % 1024 == 0)
		printf(" (%" PRIu64 " KiB)", bytes >> 10);
	printf("\n");
}

static void print_capabilities(uint64_t caps)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} names[] = {
		{ KVFPGA_CAP_PRIME_EXPORT, "prime-export" },
		{ KVFPGA_CAP_PRIME_IMPORT, "prime-import" },
		{ KVFPGA_CAP_CONTIGUOUS, "contiguous" },
	};

	printf("%-13s 0x%" PRIx64, "capabilities", caps);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (caps & names[i].bit)
			printf(" %s", names[i].name);
	}
	printf("\n");
}

static int list_cards(void)
{
	struct kvfpga_card_entry *entries;
	size_t count, shown;
	int ret = kvfpga_enumerate(NULL, 0, &count);

	if (ret) {
		fprintf(stderr, "kvfpga-info: cannot list cards: %s\n", kvfpga_strerror(ret));
		return 1;
	}
	entries = calloc(count ? count : 1, sizeof(*entries));
	if (!entries) {
		fprintf(stderr, "kvfpga-info: out of memory\n");
		return 1;
	}
	ret = kvfpga_enumerate(entries, count, &shown);
	if (ret) {
		fprintf(stderr, "kvfpga-info: cannot list cards: %s\n", kvfpga_strerror(ret));
		free(entries);
		return 1;
	}
	printf("%-13s %zu\n", "cards found", shown);
	for (size_t i = 0; i < shown && i < count; i++)
		printf("  card %zu      %s %s (driver %s)\n", i,
		       entries[i].pci_slot[0] ? entries[i].pci_slot : "(no PCI slot)",
		       entries[i].node, entries[i].driver);
	free(entries);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "emu-mem", required_argument, NULL, 'm' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kvfpga_open_opts opts;
	struct kvfpga_device_info info;
	struct kvfpga_device *dev;
	const char *device = NULL, *emu_mem = NULL;
	char line[256];
	int c, list = 0, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:m:lh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			device = optarg;
			break;
		case 'm':
			emu_mem = optarg;
			break;
		case 'l':
			list = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "kvfpga-info: option '%s' needs a value (try --help)\n",
			        argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "kvfpga-info: unknown option '%s' (try --help)\n",
			        argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvfpga-info: unexpected argument '%s' (try --help)\n",
		        argv[optind]);
		return 2;
	}

	ret = kvfpga_open_opts_init(&opts);
	if (ret) {
		const char *env_device = getenv("KVFPGA_DEVICE");
		struct kvfpga_open_opts probe = { 0 };

		/* Name the variable that is wrong. */
		if (env_device && *env_device && kvfpga_open_opts_set_device(&probe, env_device))
			fprintf(stderr, "kvfpga-info: bad KVFPGA_DEVICE '%s' (try --help)\n",
			        env_device);
		else
			fprintf(stderr, "kvfpga-info: bad KVFPGA_EMU_MEM '%s' (try --help)\n",
			        getenv("KVFPGA_EMU_MEM") ? getenv("KVFPGA_EMU_MEM") : "");
		return 2;
	}
	if (device && kvfpga_open_opts_set_device(&opts, device)) {
		fprintf(stderr, "kvfpga-info: bad --device '%s' (try --help)\n", device);
		return 2;
	}
	if (emu_mem && kvfpga_open_opts_set_emu_mem(&opts, emu_mem)) {
		fprintf(stderr,
		        "kvfpga-info: bad --emu-mem '%s': want a multiple of 4K from 8K to 1T\n",
		        emu_mem);
		return 2;
	}
	ret = kvfpga_device_open(&opts, &dev);
	if (ret) {
		if (!device)
			device = getenv("KVFPGA_DEVICE");
		fprintf(stderr, "kvfpga-info: cannot open device '%s': %s\n",
		        device && *device ? device : "auto", kvfpga_strerror(ret));
		return 1;
	}
	ret = kvfpga_device_describe(dev, line, sizeof(line));
	if (!ret)
		ret = kvfpga_device_query(dev, &info);
	if (ret) {
		fprintf(stderr, "kvfpga-info: cannot query the device: %s\n", kvfpga_strerror(ret));
		kvfpga_device_close(dev);
		return 1;
	}

	printf("%s\n", line);
	printf("%-13s %s\n", "backend", kvfpga_backend_name(info.backend));
	if (info.backend == KVFPGA_BACKEND_CARD) {
		printf("%-13s %s\n", "node", info.node);
		printf("%-13s %s\n", "pci slot", info.pci_slot[0] ? info.pci_slot : "(none)");
	}
	printf("%-13s %s\n", "name", info.name);
	printf("%-13s %s\n", "serial", info.serial[0] ? info.serial : "(none)");
	printf("%-13s %u.%u\n", "abi", info.abi_major, info.abi_minor);
	print_capabilities(info.capabilities);
	print_size("mem size", info.mem_size);
	print_size("mem total", info.mem_total);
	print_size("mem free", info.mem_free);
	print_size("granule", info.granule);
	print_size("max bo size", info.max_bo_size);
	printf("%-13s %u\n", "bo count", info.bo_count);
	kvfpga_device_close(dev);
	return list ? list_cards() : 0;
}
