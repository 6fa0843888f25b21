/* SPDX-License-Identifier: MIT */
/*
 * kvfpga-mkcard: write a kvfpga card descriptor (include/kvfpga/kvfpga_card.h)
 * at the start of a file that backs a stand-in card's memory, e.g. the
 * memory-backend-file of QEMU's ivshmem-plain device.  Can also write a
 * deliberately broken descriptor, for tests that a card is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <endian.h>
#include <zlib.h>

#include <kvfpga/kvfpga_card.h>

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: kvfpga-mkcard [options] FILE\n"
	        "Write a kvfpga card descriptor at offset 0 of FILE (created or resized).\n"
	        "  -s, --size BYTES[K|M|G]    card memory size (default 256M)\n"
	        "  -g, --granule BYTES[K|M]   allocation granule (default 4K)\n"
	        "  -n, --name NAME            card name (default kvfpga-sim)\n"
	        "  -S, --serial SERIAL        serial number (default SIM0001)\n"
	        "  -r, --reserve OFF:SIZE     a range the card keeps for itself (repeatable)\n"
	        "  -c, --corrupt WHAT         write a broken descriptor: magic, crc, version,\n"
	        "                             granule, size, range, flags\n"
	        "  -k, --keep                 do not resize FILE (its size must fit)\n"
	        "  -h, --help                 this text\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'K':
	case 'k':
		v <<= 10;
		end++;
		break;
	case 'M':
	case 'm':
		v <<= 20;
		end++;
		break;
	case 'G':
	case 'g':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "granule", required_argument, NULL, 'g' },
		{ "name", required_argument, NULL, 'n' },
		{ "serial", required_argument, NULL, 'S' },
		{ "reserve", required_argument, NULL, 'r' },
		{ "corrupt", required_argument, NULL, 'c' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kvfpga_card_desc d;
	uint64_t size = 256ULL << 20, granule = 4096;
	const char *name = "kvfpga-sim", *serial = "SIM0001", *corrupt = NULL;
	unsigned int nres = 0;
	int keep = 0, c, fd;

	memset(&d, 0, sizeof(d));
	while ((c = getopt_long(argc, argv, "s:g:n:S:r:c:kh", opts, NULL)) != -1) {
		uint64_t off, len;
		char *colon;

		switch (c) {
		case 's':
			if (parse_size(optarg, &size)) {
				fprintf(stderr, "kvfpga-mkcard: bad size '%s'\n", optarg);
				return 2;
			}
			break;
		case 'g':
			if (parse_size(optarg, &granule)) {
				fprintf(stderr, "kvfpga-mkcard: bad granule '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			name = optarg;
			break;
		case 'S':
			serial = optarg;
			break;
		case 'r':
			colon = strchr(optarg, ':');
			if (!colon || nres >= KVFPGA_DESC_MAX_RANGES) {
				fprintf(stderr, "kvfpga-mkcard: bad or too many --reserve '%s'\n",
				        optarg);
				return 2;
			}
			*colon = '\0';
			if (parse_size(optarg, &off) || parse_size(colon + 1, &len)) {
				fprintf(stderr, "kvfpga-mkcard: bad range '%s:%s'\n", optarg,
				        colon + 1);
				return 2;
			}
			d.reserved[nres].offset = htole64(off);
			d.reserved[nres].size = htole64(len);
			nres++;
			break;
		case 'c':
			corrupt = optarg;
			break;
		case 'k':
			keep = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	if (strlen(name) >= KVFPGA_DESC_NAME_LEN || strlen(serial) >= KVFPGA_DESC_NAME_LEN) {
		fprintf(stderr, "kvfpga-mkcard: name and serial must be under %d bytes\n",
		        KVFPGA_DESC_NAME_LEN);
		return 2;
	}

	d.magic = htole32(KVFPGA_DESC_MAGIC);
	d.version = htole16(KVFPGA_DESC_VERSION);
	d.header_size = htole16(sizeof(d));
	d.mem_size = htole64(size);
	d.granule = htole64(granule);
	d.num_reserved = htole32(nres);
	memcpy(d.name, name, strlen(name));
	memcpy(d.serial, serial, strlen(serial));

	if (corrupt) {
		if (!strcmp(corrupt, "magic"))
			d.magic = htole32(0xdeadbeef);
		else if (!strcmp(corrupt, "version"))
			d.version = htole16(KVFPGA_DESC_VERSION + 1);
		else if (!strcmp(corrupt, "granule"))
			d.granule = htole64(granule + 1);
		else if (!strcmp(corrupt, "size"))
			d.mem_size = htole64(size * 2);
		else if (!strcmp(corrupt, "range")) {
			d.num_reserved = htole32(1);
			d.reserved[0].offset = htole64(size - granule);
			d.reserved[0].size = htole64(2 * granule);
		} else if (!strcmp(corrupt, "flags"))
			d.flags = htole32(1);
		else if (strcmp(corrupt, "crc")) {
			fprintf(stderr, "kvfpga-mkcard: unknown --corrupt '%s'\n", corrupt);
			return 2;
		}
	}
	d.crc32 = htole32((uint32_t)crc32(0L, (const Bytef *)&d, KVFPGA_DESC_CRC_LEN));
	if (corrupt && !strcmp(corrupt, "crc"))
		d.crc32 ^= htole32(1);

	fd = open(argv[optind], O_RDWR | O_CREAT, 0600);
	if (fd < 0) {
		fprintf(stderr, "kvfpga-mkcard: %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	if (!keep && ftruncate(fd, (off_t)size) != 0) {
		fprintf(stderr, "kvfpga-mkcard: resize %s: %s\n", argv[optind], strerror(errno));
		close(fd);
		return 1;
	}
	/*
	 * The whole reserved first page: the descriptor, then zeros.  Written
	 * through a shared mapping so FILE may also be a PCI BAR's sysfs
	 * resource file, which supports mmap but not write.
	 */
	{
		char *page =
		        mmap(NULL, KVFPGA_DESC_RESERVED, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (page == MAP_FAILED) {
			fprintf(stderr, "kvfpga-mkcard: map %s: %s\n", argv[optind],
			        strerror(errno));
			close(fd);
			return 1;
		}
		memset(page, 0, KVFPGA_DESC_RESERVED);
		memcpy(page, &d, sizeof(d));
		if (msync(page, KVFPGA_DESC_RESERVED, MS_SYNC) != 0 && errno != EINVAL) {
			fprintf(stderr, "kvfpga-mkcard: sync %s: %s\n", argv[optind],
			        strerror(errno));
			munmap(page, KVFPGA_DESC_RESERVED);
			close(fd);
			return 1;
		}
		munmap(page, KVFPGA_DESC_RESERVED);
	}
	if (close(fd) != 0) {
		fprintf(stderr, "kvfpga-mkcard: close %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	return 0;
}
