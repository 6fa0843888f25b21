/* SPDX-License-Identifier: MIT */
/*
 * kvfpga-cl: the OpenCL platforms and devices libkvfpga sees, which of them
 * it would use for attention (and why not the others), and which one it
 * picks with the current environment or --device.  --xclbin shows what a
 * prebuilt .xclbin holds (read with XRT when the library has it).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvfpga/engine.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: kvfpga-cl [--device N|NAME] [--xclbin FILE] [--help]\n"
	           "  Lists the OpenCL devices libkvfpga sees and marks the one its attention\n"
	           "  engine would use ('*').  The choice follows KVFPGA_OPENCL_DEVICE (an index\n"
	           "  or a case-insensitive substring of \"platform: device\"), or --device;\n"
	           "  without one, the first usable accelerator, else the first usable device.\n"
	           "  --xclbin FILE  print the platform, UUID and compute units of an .xclbin\n"
	           "                 (needs libkvfpga built with XRT, libxrt-dev)\n");
}

static const char *type_name(uint32_t t)
{
	if (t & KVFPGA_CL_TYPE_ACCELERATOR)
		return "accelerator";
	if (t & KVFPGA_CL_TYPE_GPU)
		return "GPU";
	if (t & KVFPGA_CL_TYPE_CPU)
		return "CPU";
	return "other";
}

static int show_xclbin(const char *path)
{
	struct kvfpga_xclbin_info info;
	char msg[KVFPGA_ENGINE_MSG_MAX];
	int ret = kvfpga_xclbin_inspect(path, &info, msg, sizeof(msg));

	if (ret) {
		fprintf(stderr, "kvfpga-cl: %s\n", msg[0] ? msg : strerror(-ret));
		return 1;
	}
	printf("%s\n  platform: %s\n  uuid: ", path, info.platform);
	for (int i = 0; i < 16; i++)
		printf("%02x%s", info.uuid[i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
	printf("\n  kernels: %u, compute units: %u (XRT)\n  IP layout: %u entries\n",
	       info.n_kernels, info.n_compute_units, info.n_ips);
	for (uint32_t i = 0; i < info.n_ips && i < 32; i++)
		printf("    %s\n", info.ips[i]);
	printf("  kvfpga attention kernels: %s\n", info.has_attention ? "all present" : "MISSING");
	return info.has_attention ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "xclbin", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kvfpga_cl_device_desc *descs = NULL;
	struct kvfpga_engine_opts opts;
	const char *device = NULL, *xclbin = NULL;
	char msg[KVFPGA_ENGINE_MSG_MAX];
	size_t n = 0;
	uint32_t chosen = 0;
	int c, ret, picked;

	while ((c = getopt_long(argc, argv, "d:x:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			device = optarg;
			break;
		case 'x':
			xclbin = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (xclbin)
		return show_xclbin(xclbin);

	ret = kvfpga_engine_opts_init(&opts);
	if (ret) {
		fprintf(stderr, "kvfpga-cl: bad KVFPGA_OPENCL_DEVICE/_BINARY/_CACHE value\n");
		return 2;
	}
	if (device) {
		char *end;
		unsigned long v = strtoul(device, &end, 10);

		opts.device_index = -1;
		opts.device_name[0] = '\0';
		if (*device && !*end && v < 1000000)
			opts.device_index = (int)v;
		else if (strlen(device) < sizeof(opts.device_name))
			snprintf(opts.device_name, sizeof(opts.device_name), "%s", device);
		else {
			fprintf(stderr, "kvfpga-cl: --device name too long\n");
			return 2;
		}
	}
	ret = kvfpga_cl_list_devices(NULL, 0, &n);
	if (ret) {
		fprintf(stderr, "kvfpga-cl: listing OpenCL devices: %s\n", strerror(-ret));
		return 1;
	}
	if (n) {
		size_t got = n;

		descs = calloc(n, sizeof(*descs));
		if (!descs || kvfpga_cl_list_devices(descs, got, &n)) {
			fprintf(stderr, "kvfpga-cl: listing OpenCL devices failed\n");
			free(descs);
			return 1;
		}
		if (n > got)
			n = got;
	}
	ret = kvfpga_cl_pick_device(&opts, &chosen, msg, sizeof(msg));
	picked = ret == 0;
	if (n == 0)
		printf("no OpenCL devices (is an ICD such as pocl-opencl-icd installed?)\n");
	for (size_t i = 0; i < n; i++) {
		const struct kvfpga_cl_device_desc *d = &descs[i];

		if (i == 0 || d->platform_index != descs[i - 1].platform_index)
			printf("platform %u: %s\n", d->platform_index, d->platform);
		printf(" %c %u: %s [%s, %u compute units, %llu MiB, max buffer %llu MiB]\n",
		       picked && chosen == d->index ? '*' : ' ', d->index, d->device,
		       type_name(d->type), d->compute_units,
		       (unsigned long long)(d->global_mem >> 20),
		       (unsigned long long)(d->max_alloc >> 20));
		printf("      %s; %s; compiler: %s; %s%s%s\n", d->version, d->c_version,
		       d->compiler ? "yes" : "no", d->usable ? "usable" : "NOT usable",
		       d->note[0] ? ": " : "", d->note);
	}
	if (picked)
		printf("attention engine would use device %u\n", chosen);
	else
		printf("attention engine would use no device: %s\n", msg);
	free(descs);
	return picked ? 0 : 1;
}
