// SPDX-License-Identifier: MIT
/*
 * The device layer (include/kvfpga/kvfpga.h).
 *
 * Suites:
 *   opts      open options and their environment (KVFPGA_DEVICE, KVFPGA_EMU_MEM)
 *   select    choosing a device: bad options, nodes that are not cards,
 *             enumeration, error text
 *   device    buffers on the device the environment selects: emulation by
 *             default when there is no card; KVFPGA_DEVICE=card runs the very
 *             same tests against the kernel driver.  They assume only what
 *             both backends guarantee, read every size from
 *             kvfpga_device_query(), and expect the device to be otherwise
 *             idle (mem_free and bo_count are device-wide).
 *   emulated  what only the emulation promises (its sizes, imports from
 *             another emulated device, which memfds it accepts)
 *
 * The emulated card is 1 MiB here (opts.emu_mem_size) so that filling it is
 * quick; a card is used at whatever size it has.  Random parts are seeded:
 * KVFPGA_TEST_SEED=<n> replays them.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvfpga/kvfpga.h"
#include "kvfpga_accel.h"
#include "helpers/test_seed.h"

#define TEST_EMU_MEM (1ULL << 20)

/* The environment as the test program found it; opts tests change and restore it. */
static char *saved_device_env, *saved_emu_mem_env;

static void restore_env(const char *name, const char *value)
{
	if (value)
		setenv(name, value, 1);
	else
		unsetenv(name);
}

static void clear_env(void)
{
	unsetenv("KVFPGA_DEVICE");
	unsetenv("KVFPGA_EMU_MEM");
}

static void restore_saved_env(void)
{
	restore_env("KVFPGA_DEVICE", saved_device_env);
	restore_env("KVFPGA_EMU_MEM", saved_emu_mem_env);
}

/* Options from the environment, with a small emulated card. */
static struct kvfpga_open_opts env_opts(void)
{
	struct kvfpga_open_opts opts;

	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	opts.emu_mem_size = TEST_EMU_MEM;
	return opts;
}

static struct kvfpga_device *open_env_device(void)
{
	struct kvfpga_open_opts opts = env_opts();
	struct kvfpga_device *dev = NULL;
	int ret = kvfpga_device_open(&opts, &dev);

	ck_assert_msg(ret == 0, "cannot open the device: %s", kvfpga_strerror(ret));
	return dev;
}

static struct kvfpga_device *open_emulated(uint64_t mem_size)
{
	struct kvfpga_open_opts opts;
	struct kvfpga_device *dev = NULL;

	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, "emulated"), 0);
	opts.emu_mem_size = mem_size;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), 0);
	return dev;
}

static struct kvfpga_device_info query(struct kvfpga_device *dev)
{
	struct kvfpga_device_info info;

	ck_assert_int_eq(kvfpga_device_query(dev, &info), 0);
	return info;
}

static void *map_bo(struct kvfpga_bo *bo)
{
	void *ptr = NULL;

	ck_assert_int_eq(kvfpga_bo_map(bo, &ptr), 0);
	ck_assert_ptr_nonnull(ptr);
	return ptr;
}

static uint64_t pattern_word(uint32_t tag, uint64_t i)
{
	return ((uint64_t)tag << 32) ^ (i * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a5a5a5a5a5a5aULL;
}

static void fill_pattern(void *ptr, uint64_t size, uint32_t tag)
{
	uint64_t *w = ptr;

	for (uint64_t i = 0; i < size / 8; i++)
		w[i] = pattern_word(tag, i);
}

static bool has_pattern(const void *ptr, uint64_t size, uint32_t tag)
{
	const uint64_t *w = ptr;

	for (uint64_t i = 0; i < size / 8; i++) {
		if (w[i] != pattern_word(tag, i))
			return false;
	}
	return true;
}

static bool all_zero(const void *ptr, uint64_t size)
{
	const uint64_t *w = ptr;

	for (uint64_t i = 0; i < size / 8; i++) {
		if (w[i])
			return false;
	}
	return true;
}

struct bo_set {
	struct kvfpga_bo **items;
	size_t count, cap;
};

static void set_push(struct bo_set *set, struct kvfpga_bo *bo)
{
	if (set->count == set->cap) {
		set->cap = set->cap ? 2 * set->cap : 64;
		set->items = realloc(set->items, set->cap * sizeof(*set->items));
		ck_assert_ptr_nonnull(set->items);
	}
	set->items[set->count++] = bo;
}

static void set_free_all(struct bo_set *set)
{
	for (size_t i = 0; i < set->count; i++)
		kvfpga_bo_free(set->items[i]);
	free(set->items);
	*set = (struct bo_set){ 0 };
}

/* Create buffers, largest first, until not even one granule fits; returns the bytes taken. */
static uint64_t fill_device(struct kvfpga_device *dev, const struct kvfpga_device_info *info,
                            struct bo_set *set)
{
	uint64_t size = info->max_bo_size, taken = 0;

	for (;;) {
		struct kvfpga_bo *bo = NULL;
		int ret = kvfpga_bo_create(dev, size, 0, &bo);

		if (ret == -ENOSPC) {
			ck_assert_ptr_null(bo);
			if (size == info->granule)
				return taken;
			size = size / 2 > info->granule ? size / 2 : info->granule;
			continue;
		}
		ck_assert_msg(ret == 0, "create %llu bytes: %s", (unsigned long long)size,
		              kvfpga_strerror(ret));
		taken += kvfpga_bo_size(bo);
		set_push(set, bo);
	}
}

/* ---- opts ---- */

START_TEST(opts_defaults)
{
	struct kvfpga_open_opts opts;

	clear_env();
	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	ck_assert_int_eq(opts.backend, KVFPGA_BACKEND_AUTO);
	ck_assert_int_eq(opts.card_index, -1);
	ck_assert_str_eq(opts.pci_slot, "");
	ck_assert_str_eq(opts.node, "");
	ck_assert_uint_eq(opts.emu_mem_size, KVFPGA_EMU_DEFAULT_MEM);
	/* An empty variable counts as unset. */
	setenv("KVFPGA_DEVICE", "", 1);
	setenv("KVFPGA_EMU_MEM", "", 1);
	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	ck_assert_int_eq(opts.backend, KVFPGA_BACKEND_AUTO);
	ck_assert_uint_eq(opts.emu_mem_size, KVFPGA_EMU_DEFAULT_MEM);
	ck_assert_int_eq(kvfpga_open_opts_init(NULL), -EINVAL);
	restore_saved_env();
}
END_TEST

static const struct {
	const char *spec;
	enum kvfpga_backend backend;
	int card_index;
	const char *pci_slot, *node;
} good_devices[] = {
	{ "emulated", KVFPGA_BACKEND_EMULATED, -1, "", "" },
	{ "auto", KVFPGA_BACKEND_AUTO, -1, "", "" },
	{ "card", KVFPGA_BACKEND_CARD, -1, "", "" },
	{ "0", KVFPGA_BACKEND_CARD, 0, "", "" },
	{ "2", KVFPGA_BACKEND_CARD, 2, "", "" },
	{ "0000:00:04.0", KVFPGA_BACKEND_CARD, -1, "0000:00:04.0", "" },
	{ "00:1F.7", KVFPGA_BACKEND_CARD, -1, "0000:00:1f.7", "" },
	{ "10000:3a:00.1", KVFPGA_BACKEND_CARD, -1, "10000:3a:00.1", "" },
	{ "/dev/accel/accel0", KVFPGA_BACKEND_CARD, -1, "", "/dev/accel/accel0" },
	{ "/dev/dri/renderD128", KVFPGA_BACKEND_CARD, -1, "", "/dev/dri/renderD128" },
};

START_TEST(opts_device_good)
{
	struct kvfpga_open_opts opts;

	clear_env();
	setenv("KVFPGA_DEVICE", good_devices[_i].spec, 1);
	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	ck_assert_int_eq(opts.backend, good_devices[_i].backend);
	ck_assert_int_eq(opts.card_index, good_devices[_i].card_index);
	ck_assert_str_eq(opts.pci_slot, good_devices[_i].pci_slot);
	ck_assert_str_eq(opts.node, good_devices[_i].node);
	ck_assert_uint_eq(opts.emu_mem_size, KVFPGA_EMU_DEFAULT_MEM);
	restore_saved_env();
}
END_TEST

static const char *const bad_devices[] = {
	"emulate",
	"Card",
	"-1",
	"+1",
	" 1",
	"1 ",
	"99999999999999999999",
	"2147483648",
	"0000:00:04",
	"0000:00:04.8",
	"0000:00:20.0",
	"000g:00:04.0",
	"0000:0:04.0",
	"0000:00:04.0.1",
	"0000::04.0",
	"123456789:00:04.0",
	"dev/accel/accel0",
	"/dev/a/very/long/path/that/does/not/fit/in/the/sixty/four/bytes/node",
};

START_TEST(opts_device_bad)
{
	struct kvfpga_open_opts opts, before;

	clear_env();
	memset(&opts, 0xa5, sizeof(opts));
	before = opts;
	setenv("KVFPGA_DEVICE", bad_devices[_i], 1);
	ck_assert_msg(kvfpga_open_opts_init(&opts) == -EINVAL, "'%s' accepted", bad_devices[_i]);
	ck_assert_msg(!memcmp(&opts, &before, sizeof(opts)), "'%s' changed opts", bad_devices[_i]);
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, bad_devices[_i]), -EINVAL);
	ck_assert(!memcmp(&opts, &before, sizeof(opts)));
	restore_saved_env();
}
END_TEST

static const struct {
	const char *spec;
	uint64_t bytes;
} good_sizes[] = {
	{ "8192", 8192 },
	{ "64K", 64ULL << 10 },
	{ "64k", 64ULL << 10 },
	{ "3M", 3ULL << 20 },
	{ "1G", 1ULL << 30 },
	{ "1t", 1ULL << 40 },
	{ "1099511627776", 1ULL << 40 },
};

START_TEST(opts_emu_mem_good)
{
	struct kvfpga_open_opts opts;

	clear_env();
	setenv("KVFPGA_EMU_MEM", good_sizes[_i].spec, 1);
	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	ck_assert_uint_eq(opts.emu_mem_size, good_sizes[_i].bytes);
	ck_assert_int_eq(opts.backend, KVFPGA_BACKEND_AUTO);
	restore_saved_env();
}
END_TEST

static const char *const bad_sizes[] = {
	"0",
	"4096",
	"12345",
	"1X",
	"1MB",
	"-1M",
	" 1M",
	"1M ",
	"M",
	"2T",
	"0x1000",
	"17179869184G",
	"99999999999999999999",
	"1.5M",
};

START_TEST(opts_emu_mem_bad)
{
	struct kvfpga_open_opts opts, before;

	clear_env();
	memset(&opts, 0x5a, sizeof(opts));
	before = opts;
	setenv("KVFPGA_EMU_MEM", bad_sizes[_i], 1);
	ck_assert_msg(kvfpga_open_opts_init(&opts) == -EINVAL, "'%s' accepted", bad_sizes[_i]);
	ck_assert(!memcmp(&opts, &before, sizeof(opts)));
	ck_assert_int_eq(kvfpga_open_opts_set_emu_mem(&opts, bad_sizes[_i]), -EINVAL);
	ck_assert(!memcmp(&opts, &before, sizeof(opts)));
	restore_saved_env();
}
END_TEST

START_TEST(opts_setters)
{
	struct kvfpga_open_opts opts;

	clear_env();
	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	ck_assert_int_eq(kvfpga_open_opts_set_emu_mem(&opts, "2M"), 0);
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, "3"), 0);
	ck_assert_int_eq(opts.card_index, 3);
	/* A new selector replaces the old one and keeps the emulated size. */
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, "0000:00:04.0"), 0);
	ck_assert_int_eq(opts.card_index, -1);
	ck_assert_str_eq(opts.pci_slot, "0000:00:04.0");
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, "/dev/accel/accel1"), 0);
	ck_assert_str_eq(opts.pci_slot, "");
	ck_assert_str_eq(opts.node, "/dev/accel/accel1");
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, "emulated"), 0);
	ck_assert_int_eq(opts.backend, KVFPGA_BACKEND_EMULATED);
	ck_assert_str_eq(opts.node, "");
	ck_assert_uint_eq(opts.emu_mem_size, 2ULL << 20);
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, ""), -EINVAL);
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_open_opts_set_device(NULL, "card"), -EINVAL);
	ck_assert_int_eq(kvfpga_open_opts_set_emu_mem(&opts, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_open_opts_set_emu_mem(NULL, "1M"), -EINVAL);
	ck_assert_int_eq(opts.backend, KVFPGA_BACKEND_EMULATED);
	ck_assert_uint_eq(opts.emu_mem_size, 2ULL << 20);
	restore_saved_env();
}
END_TEST

START_TEST(opts_env_reaches_the_device)
{
	struct kvfpga_open_opts opts;
	struct kvfpga_device *dev = NULL;

	clear_env();
	setenv("KVFPGA_DEVICE", "emulated", 1);
	setenv("KVFPGA_EMU_MEM", "64K", 1);
	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), 0);
	ck_assert_int_eq(query(dev).backend, KVFPGA_BACKEND_EMULATED);
	ck_assert_uint_eq(query(dev).mem_size, 64ULL << 10);
	kvfpga_device_close(dev);
	restore_saved_env();
}
END_TEST

/* ---- select ---- */

START_TEST(open_rejects_bad_opts)
{
	struct kvfpga_open_opts good, opts;
	struct kvfpga_device *dev = (struct kvfpga_device *)&good;

	clear_env();
	ck_assert_int_eq(kvfpga_open_opts_init(&good), 0);
	restore_saved_env();
	ck_assert_int_eq(kvfpga_device_open(NULL, &dev), -EINVAL);
	ck_assert_int_eq(kvfpga_device_open(&good, NULL), -EINVAL);
	opts = good;
	opts.backend = (enum kvfpga_backend)7;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	opts = good;
	opts.card_index = -2;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	opts = good;
	opts.card_index = 0;
	strcpy(opts.node, "/dev/accel/accel0");
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	opts = good;
	memset(opts.node, 'a', sizeof(opts.node));
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	opts = good;
	memset(opts.pci_slot, '0', sizeof(opts.pci_slot));
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	opts = good;
	opts.backend = KVFPGA_BACKEND_EMULATED;
	opts.card_index = 0;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	opts = good;
	opts.backend = KVFPGA_BACKEND_EMULATED;
	opts.emu_mem_size = 0;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	opts.emu_mem_size = KVFPGA_EMU_MIN_MEM + 1;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	opts.emu_mem_size = KVFPGA_EMU_GRANULE;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	opts.emu_mem_size = KVFPGA_EMU_MAX_MEM * 2;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -EINVAL);
	ck_assert_ptr_eq(dev, (struct kvfpga_device *)&good);
}
END_TEST

static struct kvfpga_open_opts card_opts(void)
{
	struct kvfpga_open_opts opts;

	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, "card"), 0);
	return opts;
}

START_TEST(open_nodes_that_are_not_cards)
{
	struct kvfpga_open_opts opts = card_opts();
	struct kvfpga_device *dev = NULL;
	char fifo[64], file[64];
	int fd;

	strcpy(opts.node, "/dev/null");
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -ENODEV);
	strcpy(opts.node, "/nonexistent/kvfpga-node");
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -ENOENT);
	/* A FIFO must be refused, not opened (which would block). */
	snprintf(fifo, sizeof(fifo), "/tmp/kvfpga-test-fifo-%d", (int)getpid());
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	strcpy(opts.node, fifo);
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -ENODEV);
	unlink(fifo);
	snprintf(file, sizeof(file), "/tmp/kvfpga-test-file-%d", (int)getpid());
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	strcpy(opts.node, file);
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -ENODEV);
	unlink(file);
	ck_assert_ptr_null(dev);
}
END_TEST

START_TEST(open_missing_cards)
{
	struct kvfpga_open_opts opts = card_opts();
	struct kvfpga_device *dev = NULL;
	size_t count;
	int ret;

	ck_assert_int_eq(kvfpga_enumerate(NULL, 0, &count), 0);
	opts.card_index = 4096;
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -ENODEV);
	opts.card_index = -1;
	strcpy(opts.pci_slot, "ffff:ff:1f.7");
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), -ENODEV);
	opts.pci_slot[0] = '\0';
	ck_assert_ptr_null(dev);
	/* "card" with no card is -ENODEV, never a silent emulation. */
	ret = kvfpga_device_open(&opts, &dev);
	if (count == 0) {
		ck_assert_int_eq(ret, -ENODEV);
	} else {
		ck_assert_int_eq(ret, 0);
		ck_assert_int_eq(query(dev).backend, KVFPGA_BACKEND_CARD);
		kvfpga_device_close(dev);
	}
}
END_TEST

START_TEST(auto_picks_card_else_emulation)
{
	struct kvfpga_open_opts opts;
	struct kvfpga_device *dev = NULL;
	size_t count;

	ck_assert_int_eq(kvfpga_open_opts_init(&opts), 0);
	ck_assert_int_eq(kvfpga_open_opts_set_device(&opts, "auto"), 0);
	opts.emu_mem_size = TEST_EMU_MEM;
	ck_assert_int_eq(kvfpga_enumerate(NULL, 0, &count), 0);
	ck_assert_int_eq(kvfpga_device_open(&opts, &dev), 0);
	ck_assert_int_eq(query(dev).backend, count ? KVFPGA_BACKEND_CARD : KVFPGA_BACKEND_EMULATED);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(enumerate_is_consistent)
{
	struct kvfpga_card_entry entries[16];
	size_t count = 12345, again = 0;

	ck_assert_int_eq(kvfpga_enumerate(NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_enumerate(NULL, 1, &count), -EINVAL);
	ck_assert_uint_eq(count, 12345);
	ck_assert_int_eq(kvfpga_enumerate(NULL, 0, &count), 0);
	ck_assert_int_eq(kvfpga_enumerate(entries, 16, &again), 0);
	ck_assert_uint_eq(count, again);
	for (size_t i = 0; i < count && i < 16; i++) {
		ck_assert_str_eq(entries[i].driver, "kvfpga");
		ck_assert(!strncmp(entries[i].node, "/dev/accel/accel", 16) ||
		          !strncmp(entries[i].node, "/dev/dri/renderD", 16));
		/* Accel nodes list before render nodes. */
		if (i > 0 && !strncmp(entries[i - 1].node, "/dev/dri/", 9))
			ck_assert(!strncmp(entries[i].node, "/dev/dri/", 9));
	}
}
END_TEST

START_TEST(backend_names)
{
	ck_assert_str_eq(kvfpga_backend_name(KVFPGA_BACKEND_AUTO), "auto");
	ck_assert_str_eq(kvfpga_backend_name(KVFPGA_BACKEND_CARD), "card");
	ck_assert_str_eq(kvfpga_backend_name(KVFPGA_BACKEND_EMULATED), "emulated");
	ck_assert_str_eq(kvfpga_backend_name((enum kvfpga_backend)42), "unknown");
}
END_TEST

/* Every errno this layer returns itself or passes on from open/ioctl/mmap. */
static const int returned_errors[] = {
	EINVAL, ENOMEM, ENODEV, EPROTO, E2BIG,      ENOSPC, EACCES, EPERM, ENOENT, EBADF,
	EMFILE, ENFILE, ERANGE, ENOTTY, EOPNOTSUPP, EIO,    EFAULT, EBUSY, EINTR,  ENXIO,
};

START_TEST(strerror_covers_every_error)
{
	size_t n = sizeof(returned_errors) / sizeof(returned_errors[0]);

	for (size_t i = 0; i < n; i++) {
		const char *text = kvfpga_strerror(-returned_errors[i]);

		ck_assert_ptr_nonnull(text);
		ck_assert_msg(strlen(text) > 5 && strcmp(text, "unknown error"), "errno %d: '%s'",
		              returned_errors[i], text);
		ck_assert_str_eq(kvfpga_strerror(returned_errors[i]), text);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(kvfpga_strerror(-returned_errors[j]), text);
	}
	ck_assert_ptr_nonnull(strstr(kvfpga_strerror(-EPROTO), "ABI"));
	ck_assert_ptr_nonnull(strstr(kvfpga_strerror(-ENODEV), "emulated"));
	ck_assert_str_eq(kvfpga_strerror(0), "success");
	ck_assert_str_eq(kvfpga_strerror(-123456), "unknown error");
	ck_assert_str_eq(kvfpga_strerror(INT_MIN), "unknown error");
	/* Others read as libc has them. */
	ck_assert_str_eq(kvfpga_strerror(-EAGAIN), strerror(EAGAIN));
}
END_TEST

/* ---- device ---- */

START_TEST(query_is_sane)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info info = query(dev);
	uint64_t need = KVFPGA_CAP_PRIME_EXPORT | KVFPGA_CAP_PRIME_IMPORT | KVFPGA_CAP_CONTIGUOUS;

	ck_assert(info.backend == KVFPGA_BACKEND_CARD || info.backend == KVFPGA_BACKEND_EMULATED);
	ck_assert_uint_eq(info.abi_major, KVFPGA_ABI_MAJOR);
	ck_assert_uint_eq(info.capabilities & need, need);
	ck_assert_uint_ge(info.granule, 4096);
	ck_assert_uint_eq(info.granule & (info.granule - 1), 0);
	ck_assert_uint_gt(info.mem_total, 0);
	ck_assert_uint_lt(info.mem_total, info.mem_size);
	ck_assert_uint_eq(info.mem_total % info.granule, 0);
	ck_assert_uint_ge(info.max_bo_size, info.granule);
	ck_assert_uint_le(info.max_bo_size, info.mem_total);
	ck_assert_uint_eq(info.max_bo_size % info.granule, 0);
	ck_assert_uint_le(info.mem_free, info.mem_total);
	ck_assert_uint_gt(strnlen(info.name, sizeof(info.name)), 0);
	ck_assert_uint_lt(strnlen(info.name, sizeof(info.name)), sizeof(info.name));
	ck_assert_uint_lt(strnlen(info.serial, sizeof(info.serial)), sizeof(info.serial));
	if (info.backend == KVFPGA_BACKEND_CARD) {
		ck_assert(!strncmp(info.node, "/dev/", 5));
	} else {
		ck_assert_str_eq(info.node, "");
		ck_assert_str_eq(info.pci_slot, "");
		ck_assert_uint_eq(info.mem_size, TEST_EMU_MEM);
	}
	ck_assert_int_eq(kvfpga_device_query(NULL, &info), -EINVAL);
	ck_assert_int_eq(kvfpga_device_query(dev, NULL), -EINVAL);
	kvfpga_device_close(dev);
	kvfpga_device_close(NULL);
}
END_TEST

START_TEST(card_is_enumerated)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info info = query(dev);
	struct kvfpga_card_entry entries[16];
	size_t count = 0;
	bool listed = false;

	ck_assert_int_eq(kvfpga_enumerate(entries, 16, &count), 0);
	for (size_t i = 0; i < count && i < 16; i++) {
		if (!strcmp(entries[i].node, info.node)) {
			listed = true;
			ck_assert_str_eq(entries[i].pci_slot, info.pci_slot);
		}
	}
	/* A card is always listed; the emulation never is. */
	ck_assert_int_eq(listed, info.backend == KVFPGA_BACKEND_CARD);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(describe_names_the_device)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info info = query(dev);
	char line[256], small[256];
	size_t len;

	ck_assert_int_eq(kvfpga_device_describe(dev, line, sizeof(line)), 0);
	if (info.backend == KVFPGA_BACKEND_EMULATED) {
		ck_assert_str_eq(line, "host-memory emulation (not a card), 1 MiB");
	} else {
		ck_assert(!strncmp(line, "card ", 5));
		ck_assert_ptr_nonnull(strstr(line, info.node));
		ck_assert_ptr_nonnull(strstr(line, info.name));
	}
	len = strlen(line);
	ck_assert_int_eq(kvfpga_device_describe(dev, small, len + 1), 0);
	ck_assert_str_eq(small, line);
	/* Too small: -ERANGE and the buffer untouched. */
	memset(small, 'x', sizeof(small));
	ck_assert_int_eq(kvfpga_device_describe(dev, small, len), -ERANGE);
	ck_assert_int_eq(small[0], 'x');
	ck_assert_int_eq(kvfpga_device_describe(dev, small, 0), -EINVAL);
	ck_assert_int_eq(kvfpga_device_describe(dev, NULL, 10), -EINVAL);
	ck_assert_int_eq(kvfpga_device_describe(NULL, small, 10), -EINVAL);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(bo_create_map_write_read_free)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info start = query(dev), now;
	uint64_t g = start.granule;
	struct kvfpga_bo *bo = NULL;
	void *p1, *p2;

	ck_assert_int_eq(kvfpga_bo_create(dev, 3 * g + 1, 0, &bo), 0);
	ck_assert_uint_eq(kvfpga_bo_size(bo), 4 * g);
	now = query(dev);
	ck_assert_uint_eq(now.bo_count, start.bo_count + 1);
	ck_assert_uint_eq(now.mem_free, start.mem_free - 4 * g);

	p1 = map_bo(bo);
	p2 = map_bo(bo);
	ck_assert_ptr_eq(p1, p2);
	ck_assert(all_zero(p1, 4 * g));
	fill_pattern(p1, 4 * g, 7);
	ck_assert_int_eq(kvfpga_bo_unmap(bo), 0);
	ck_assert_int_eq(kvfpga_bo_unmap(bo), -EINVAL);
	p2 = map_bo(bo);
	ck_assert(has_pattern(p2, 4 * g, 7));
	kvfpga_bo_free(bo);
	kvfpga_bo_free(NULL);

	now = query(dev);
	ck_assert_uint_eq(now.bo_count, start.bo_count);
	ck_assert_uint_eq(now.mem_free, start.mem_free);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(bo_sizes_round_to_the_granule)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info info = query(dev);
	uint64_t g = info.granule;
	const uint64_t asks[] = { 1, g - 1, g, g + 1, 2 * g, 5 * g - 7 };
	const uint64_t gets[] = { g, g, g, 2 * g, 2 * g, 5 * g };
	struct kvfpga_bo *bos[6];

	for (int i = 0; i < 6; i++) {
		uint64_t addr;

		ck_assert_int_eq(kvfpga_bo_create(dev, asks[i], 0, &bos[i]), 0);
		ck_assert_uint_eq(kvfpga_bo_size(bos[i]), gets[i]);
		addr = kvfpga_bo_card_addr(bos[i]);
		/* Inside card memory, past the descriptor, granule aligned. */
		ck_assert_uint_ge(addr, 4096);
		ck_assert_uint_eq(addr % g, 0);
		ck_assert_uint_le(addr + gets[i], info.mem_size);
		for (int j = 0; j < i; j++) {
			uint64_t other = kvfpga_bo_card_addr(bos[j]);

			ck_assert(addr + gets[i] <= other || other + gets[j] <= addr);
		}
	}
	for (int i = 0; i < 6; i++)
		kvfpga_bo_free(bos[i]);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(bo_memory_is_zeroed_on_reuse)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info info = query(dev);
	uint64_t size = 16 * info.granule <= info.max_bo_size ? 16 * info.granule : info.granule;
	struct kvfpga_bo *bos[8];

	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(kvfpga_bo_create(dev, size, 0, &bos[i]), 0);
		memset(map_bo(bos[i]), 0xa5, size);
	}
	for (int i = 0; i < 8; i++)
		kvfpga_bo_free(bos[i]);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(kvfpga_bo_create(dev, size, 0, &bos[i]), 0);
		ck_assert_msg(all_zero(map_bo(bos[i]), size), "buffer %d kept old bytes", i);
	}
	for (int i = 0; i < 8; i++)
		kvfpga_bo_free(bos[i]);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(bad_arguments_change_nothing)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info start = query(dev), now;
	struct kvfpga_bo *sentinel = (struct kvfpga_bo *)&start, *bo = sentinel, *real;
	void *ptr = &start;
	int fd = 4242, pipe_fds[2];

	ck_assert_int_eq(kvfpga_bo_create(dev, 0, 0, &bo), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_create(dev, UINT64_MAX, 0, &bo), -E2BIG);
	ck_assert_int_eq(kvfpga_bo_create(dev, start.mem_total + start.granule, 0, &bo), -E2BIG);
	ck_assert_int_eq(kvfpga_bo_create(dev, start.max_bo_size + 1, 0, &bo), -E2BIG);
	ck_assert_int_eq(kvfpga_bo_create(dev, start.granule, 1, &bo), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_create(dev, start.granule, 0x80000000u, &bo), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_create(NULL, start.granule, 0, &bo), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_create(dev, start.granule, 0, NULL), -EINVAL);
	ck_assert_ptr_eq(bo, sentinel);

	ck_assert_int_eq(kvfpga_bo_map(NULL, &ptr), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_unmap(NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_export(NULL, &fd), -EINVAL);
	ck_assert_uint_eq(kvfpga_bo_size(NULL), 0);
	ck_assert_uint_eq(kvfpga_bo_card_addr(NULL), UINT64_MAX);
	ck_assert_int_eq(kvfpga_bo_import(NULL, 0, &bo), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_import(dev, -1, &bo), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_import(dev, 0, NULL), -EINVAL);
	/* An fd that is no buffer, and one that is not open. */
	ck_assert_int_eq(pipe2(pipe_fds, O_CLOEXEC), 0);
	ck_assert_int_eq(kvfpga_bo_import(dev, pipe_fds[0], &bo), -EINVAL);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	ck_assert_int_eq(kvfpga_bo_import(dev, pipe_fds[0], &bo), -EBADF);
	ck_assert_ptr_eq(bo, sentinel);

	ck_assert_int_eq(kvfpga_bo_create(dev, start.granule, 0, &real), 0);
	ck_assert_int_eq(kvfpga_bo_map(real, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_export(real, NULL), -EINVAL);
	ck_assert_int_eq(kvfpga_bo_unmap(real), -EINVAL);
	ck_assert_ptr_eq(ptr, &start);
	ck_assert_int_eq(fd, 4242);
	kvfpga_bo_free(real);

	now = query(dev);
	ck_assert_uint_eq(now.mem_free, start.mem_free);
	ck_assert_uint_eq(now.bo_count, start.bo_count);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(largest_buffer_fits_on_an_idle_device)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info info = query(dev);
	struct kvfpga_bo *bo;
	uint8_t *p;

	ck_assert_int_eq(kvfpga_bo_create(dev, info.max_bo_size, 0, &bo), 0);
	ck_assert_uint_eq(kvfpga_bo_size(bo), info.max_bo_size);
	ck_assert_uint_le(kvfpga_bo_card_addr(bo) + info.max_bo_size, info.mem_size);
	p = map_bo(bo);
	p[0] = 1;
	p[info.max_bo_size - 1] = 2;
	kvfpga_bo_free(bo);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(exhaustion_then_free_then_fill_again)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info start = query(dev), now;
	struct bo_set set = { 0 };
	struct kvfpga_bo *bo = NULL;
	uint64_t first, second;
	size_t count;

	first = fill_device(dev, &start, &set);
	count = set.count;
	now = query(dev);
	ck_assert_uint_eq(first, start.mem_free);
	ck_assert_uint_eq(now.mem_free, 0);
	ck_assert_uint_eq(now.bo_count, start.bo_count + count);
	ck_assert_int_eq(kvfpga_bo_create(dev, start.granule, 0, &bo), -ENOSPC);
	ck_assert_ptr_null(bo);
	set_free_all(&set);

	now = query(dev);
	ck_assert_uint_eq(now.mem_free, start.mem_free);
	ck_assert_uint_eq(now.bo_count, start.bo_count);
	second = fill_device(dev, &start, &set);
	ck_assert_uint_eq(second, first);
	ck_assert_uint_eq(set.count, count);
	set_free_all(&set);
	ck_assert_uint_eq(query(dev).mem_free, start.mem_free);
	kvfpga_device_close(dev);
}
END_TEST

static int by_card_addr(const void *a, const void *b)
{
	uint64_t x = kvfpga_bo_card_addr(*(struct kvfpga_bo *const *)a);
	uint64_t y = kvfpga_bo_card_addr(*(struct kvfpga_bo *const *)b);

	return x < y ? -1 : x > y;
}

START_TEST(fragmentation_then_merge)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info start = query(dev);
	struct bo_set blocks = { 0 }, rest = { 0 };
	struct kvfpga_bo *bo = NULL;
	uint64_t block = start.granule;
	size_t freed = 0, kept = 0;
	int ret;

	/* Blocks of a size that gives at most a few hundred buffers. */
	while (start.mem_total / block > 256)
		block *= 2;
	ck_assert_uint_le(2 * block, start.max_bo_size);
	while ((ret = kvfpga_bo_create(dev, block, 0, &bo)) == 0)
		set_push(&blocks, bo);
	ck_assert_int_eq(ret, -ENOSPC);
	ck_assert_uint_ge(blocks.count, 4);
	fill_device(dev, &start, &rest);
	ck_assert_uint_eq(query(dev).mem_free, 0);

	/*
	 * Free every other block in card-address order.  The card is full, so
	 * each freed block sits between used memory: the free space is all in
	 * separate holes of one block each.
	 */
	qsort(blocks.items, blocks.count, sizeof(*blocks.items), by_card_addr);
	for (size_t i = 0; i < blocks.count; i++) {
		if (i % 2 == 0) {
			kvfpga_bo_free(blocks.items[i]);
			freed++;
		} else {
			blocks.items[kept++] = blocks.items[i];
		}
	}
	blocks.count = kept;
	ck_assert_uint_eq(query(dev).mem_free, freed * block);
	bo = NULL;
	ck_assert_int_eq(kvfpga_bo_create(dev, 2 * block, 0, &bo), -ENOSPC);
	ck_assert_ptr_null(bo);

	/* The holes take exactly as many blocks as were freed. */
	for (size_t i = 0; i < freed; i++) {
		ck_assert_int_eq(kvfpga_bo_create(dev, block, 0, &bo), 0);
		set_push(&blocks, bo);
	}
	ck_assert_int_eq(kvfpga_bo_create(dev, block, 0, &bo), -ENOSPC);

	/* Freeing the rest merges everything back: the largest buffer fits again. */
	set_free_all(&blocks);
	set_free_all(&rest);
	ck_assert_uint_eq(query(dev).mem_free, start.mem_free);
	ck_assert_uint_eq(query(dev).bo_count, start.bo_count);
	ck_assert_int_eq(kvfpga_bo_create(dev, start.max_bo_size, 0, &bo), 0);
	kvfpga_bo_free(bo);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(export_import_in_one_process)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info start = query(dev), now;
	uint64_t size = 2 * start.granule;
	struct kvfpga_bo *bo, *imported;
	uint8_t *a, *b;
	int fd = -1;

	ck_assert_int_eq(kvfpga_bo_create(dev, size, 0, &bo), 0);
	a = map_bo(bo);
	fill_pattern(a, size, 11);
	ck_assert_int_eq(kvfpga_bo_export(bo, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(kvfpga_bo_import(dev, fd, &imported), 0);
	close(fd);

	/* The same memory, not a copy: no new card memory, same card range. */
	ck_assert_uint_eq(kvfpga_bo_size(imported), size);
	ck_assert_uint_eq(kvfpga_bo_card_addr(imported), kvfpga_bo_card_addr(bo));
	now = query(dev);
	ck_assert_uint_eq(now.bo_count, start.bo_count + 1);
	ck_assert_uint_eq(now.mem_free, start.mem_free - size);
	b = map_bo(imported);
	ck_assert(has_pattern(b, size, 11));
	b[5] ^= 0xff;
	ck_assert_int_eq(a[5], b[5]);

	/* The creator goes first; the import keeps the memory alive. */
	kvfpga_bo_free(bo);
	ck_assert_uint_eq(query(dev).mem_free, start.mem_free - size);
	b[5] ^= 0xff;
	ck_assert(has_pattern(b, size, 11));
	kvfpga_bo_free(imported);
	now = query(dev);
	ck_assert_uint_eq(now.bo_count, start.bo_count);
	ck_assert_uint_eq(now.mem_free, start.mem_free);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(device_outlives_close_while_buffers_live)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info info = query(dev);
	struct kvfpga_bo *bo;
	void *p;
	int fd;

	ck_assert_int_eq(kvfpga_bo_create(dev, info.granule, 0, &bo), 0);
	p = map_bo(bo);
	kvfpga_device_close(dev);
	fill_pattern(p, info.granule, 3);
	ck_assert_int_eq(kvfpga_bo_export(bo, &fd), 0);
	close(fd);
	ck_assert(has_pattern(p, info.granule, 3));
	kvfpga_bo_free(bo);
}
END_TEST

/* ---- across processes ---- */

static int send_fd(int sock, int fd)
{
	char byte = 'F';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cmsg;

	memset(&control, 0, sizeof(control));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cmsg;
	int fd;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS || cmsg->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

/*
 * In a child: open a device of its own, import @fd, check the parent's
 * pattern, write a reply pattern into the last granule and report the
 * card address seen.  Returns an exit code; distinct codes say what failed.
 */
static int child_import(int fd, uint64_t size, uint32_t tag, int report_fd)
{
	struct kvfpga_open_opts opts;
	struct kvfpga_device *dev;
	struct kvfpga_bo *bo;
	uint64_t granule, addr;
	uint8_t *p;

	if (kvfpga_open_opts_init(&opts))
		return 10;
	opts.emu_mem_size = TEST_EMU_MEM;
	if (kvfpga_device_open(&opts, &dev))
		return 11;
	{
		struct kvfpga_device_info info;

		if (kvfpga_device_query(dev, &info))
			return 12;
		granule = info.granule;
	}
	if (kvfpga_bo_import(dev, fd, &bo))
		return 13;
	if (kvfpga_bo_size(bo) != size)
		return 14;
	if (kvfpga_bo_map(bo, (void **)&p))
		return 15;
	if (!has_pattern(p, size - granule, tag))
		return 16;
	fill_pattern(p + size - granule, granule, tag + 1);
	addr = kvfpga_bo_card_addr(bo);
	if (write(report_fd, &addr, sizeof(addr)) != (ssize_t)sizeof(addr))
		return 17;
	kvfpga_bo_free(bo);
	kvfpga_device_close(dev);
	return 0;
}

static void expect_child_ok(pid_t pid)
{
	int status = 0;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "child failed: status 0x%x (exit code names the step)", status);
}

/* The child's import is the same card range on a card; the emulation has no shared space. */
static void expect_child_card_addr(const struct kvfpga_device_info *info, uint64_t parent,
                                   uint64_t child)
{
	if (info->backend == KVFPGA_BACKEND_CARD)
		ck_assert_uint_eq(child, parent);
	else
		ck_assert_uint_eq(child, UINT64_MAX);
}

START_TEST(export_import_across_fork)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info info = query(dev);
	uint64_t size = 3 * info.granule, child_addr = 0;
	struct kvfpga_bo *bo;
	int fd, report[2];
	uint8_t *p;
	pid_t pid;

	ck_assert_int_eq(kvfpga_bo_create(dev, size, 0, &bo), 0);
	p = map_bo(bo);
	fill_pattern(p, size, 21);
	ck_assert_int_eq(kvfpga_bo_export(bo, &fd), 0);
	ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child_import(fd, size, 21, report[1]));
	close(report[1]);
	close(fd);
	expect_child_ok(pid);
	ck_assert_int_eq(read(report[0], &child_addr, sizeof(child_addr)), sizeof(child_addr));
	close(report[0]);
	expect_child_card_addr(&info, kvfpga_bo_card_addr(bo), child_addr);
	ck_assert(has_pattern(p, size - info.granule, 21));
	ck_assert(has_pattern(p + size - info.granule, info.granule, 22));
	kvfpga_bo_free(bo);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(export_import_over_a_unix_socket)
{
	struct kvfpga_device *dev;
	struct kvfpga_device_info info;
	struct kvfpga_bo *bo;
	uint64_t size, child_addr = 0;
	int sv[2], fd;
	uint8_t *p;
	pid_t pid;

	/* The child starts before the buffer exists: the fd can only come over the socket. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t want;
		int got;

		close(sv[0]);
		if (read(sv[1], &want, sizeof(want)) != (ssize_t)sizeof(want))
			_exit(30);
		got = recv_fd(sv[1]);
		if (got < 0)
			_exit(31);
		_exit(child_import(got, want, 41, sv[1]));
	}
	close(sv[1]);
	dev = open_env_device();
	info = query(dev);
	size = 4 * info.granule;
	ck_assert_int_eq(kvfpga_bo_create(dev, size, 0, &bo), 0);
	p = map_bo(bo);
	fill_pattern(p, size, 41);
	ck_assert_int_eq(kvfpga_bo_export(bo, &fd), 0);
	ck_assert_int_eq(write(sv[0], &size, sizeof(size)), sizeof(size));
	ck_assert_int_eq(send_fd(sv[0], fd), 0);
	close(fd);
	ck_assert_int_eq(read(sv[0], &child_addr, sizeof(child_addr)), sizeof(child_addr));
	expect_child_ok(pid);
	close(sv[0]);
	expect_child_card_addr(&info, kvfpga_bo_card_addr(bo), child_addr);
	ck_assert(has_pattern(p, size - info.granule, 41));
	ck_assert(has_pattern(p + size - info.granule, info.granule, 42));
	kvfpga_bo_free(bo);
	kvfpga_device_close(dev);
}
END_TEST

/* ---- threads ---- */

#define THREADS      4
#define THREAD_STEPS 300
#define THREAD_LIVE  4

struct thread_ctx {
	struct kvfpga_device *dev;
	uint64_t granule, seed;
	unsigned id;
	char error[160];
};

static void *thread_main(void *arg)
{
	struct thread_ctx *t = arg;
	struct kvfpga_bo *live[THREAD_LIVE];
	uint32_t tags[THREAD_LIVE];
	unsigned n_live = 0;
	uint64_t rng = t->seed;

	for (unsigned step = 0; step < THREAD_STEPS && !t->error[0]; step++) {
		bool create = n_live == 0 || (n_live < THREAD_LIVE && test_rand_below(&rng, 2));

		if (create) {
			uint64_t size = (1 + test_rand_below(&rng, 8)) * t->granule;
			uint32_t tag = t->id << 16 | step;
			struct kvfpga_bo *bo;
			void *p;
			int ret = kvfpga_bo_create(t->dev, size, 0, &bo);

			if (ret == -ENOSPC)
				continue;
			if (ret || kvfpga_bo_map(bo, &p)) {
				snprintf(t->error, sizeof(t->error), "step %u: create/map: %s",
				         step, kvfpga_strerror(ret));
				break;
			}
			if (!all_zero(p, size))
				snprintf(t->error, sizeof(t->error), "step %u: not zeroed", step);
			fill_pattern(p, size, tag);
			live[n_live] = bo;
			tags[n_live++] = tag;
		} else {
			unsigned i = (unsigned)test_rand_below(&rng, n_live);
			struct kvfpga_bo *bo = live[i];
			uint64_t size = kvfpga_bo_size(bo);
			void *p;

			if (kvfpga_bo_map(bo, &p) || !has_pattern(p, size, tags[i])) {
				snprintf(t->error, sizeof(t->error),
				         "step %u: another thread's write reached this buffer",
				         step);
			}
			if (test_rand_below(&rng, 4) == 0) {
				struct kvfpga_bo *imported = NULL;
				void *q;
				int fd = -1;

				if (kvfpga_bo_export(bo, &fd) ||
				    kvfpga_bo_import(t->dev, fd, &imported) ||
				    kvfpga_bo_map(imported, &q) || !has_pattern(q, size, tags[i]))
					snprintf(t->error, sizeof(t->error),
					         "step %u: export/import", step);
				kvfpga_bo_free(imported);
				if (fd >= 0)
					close(fd);
			}
			kvfpga_bo_free(bo);
			live[i] = live[--n_live];
			tags[i] = tags[n_live];
		}
	}
	while (n_live)
		kvfpga_bo_free(live[--n_live]);
	return NULL;
}

START_TEST(threads_create_and_free_concurrently)
{
	struct kvfpga_device *dev = open_env_device();
	struct kvfpga_device_info start = query(dev), now;
	struct thread_ctx ctx[THREADS];
	pthread_t threads[THREADS];
	uint64_t seed = test_seed();

	for (unsigned i = 0; i < THREADS; i++) {
		ctx[i] = (struct thread_ctx){
			.dev = dev,
			.granule = start.granule,
			.seed = seed + i,
			.id = i,
		};
		ck_assert_int_eq(pthread_create(&threads[i], NULL, thread_main, &ctx[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
	for (unsigned i = 0; i < THREADS; i++)
		ck_assert_msg(!ctx[i].error[0], "seed %llu thread %u: %s", (unsigned long long)seed,
		              i, ctx[i].error);
	now = query(dev);
	ck_assert_msg(now.mem_free == start.mem_free && now.bo_count == start.bo_count,
	              "seed %llu: mem_free %llu (start %llu), bo_count %u (start %u)",
	              (unsigned long long)seed, (unsigned long long)now.mem_free,
	              (unsigned long long)start.mem_free, now.bo_count, start.bo_count);
	kvfpga_device_close(dev);
}
END_TEST

/* ---- emulated ---- */

static const struct {
	uint64_t mem_size, max_bo_size;
} emu_layouts[] = {
	{ 1ULL << 20, 512ULL << 10 },
	{ 768ULL << 10, 256ULL << 10 }, /* roots 512K + 256K; the descriptor is in the first */
	{ 20ULL << 10, 8ULL << 10 },    /* roots 16K + 4K; 8K of the first is free whole */
	{ KVFPGA_EMU_MIN_MEM, 4096 },
	{ KVFPGA_EMU_MAX_MEM, KVFPGA_EMU_MAX_MEM / 2 },
};

START_TEST(emu_layout)
{
	struct kvfpga_device *dev = open_emulated(emu_layouts[_i].mem_size);
	struct kvfpga_device_info info = query(dev);

	ck_assert_int_eq(info.backend, KVFPGA_BACKEND_EMULATED);
	ck_assert_uint_eq(info.mem_size, emu_layouts[_i].mem_size);
	ck_assert_uint_eq(info.mem_total, emu_layouts[_i].mem_size - 4096);
	ck_assert_uint_eq(info.mem_free, info.mem_total);
	ck_assert_uint_eq(info.max_bo_size, emu_layouts[_i].max_bo_size);
	ck_assert_uint_eq(info.granule, KVFPGA_EMU_GRANULE);
	ck_assert_uint_eq(info.abi_minor, KVFPGA_ABI_MINOR);
	ck_assert_uint_eq(info.bo_count, 0);
	ck_assert_str_eq(info.name, "kvfpga-emu");
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(emu_describe_sizes)
{
	struct kvfpga_device *dev = open_emulated(1536ULL << 10);
	char line[128];

	ck_assert_int_eq(kvfpga_device_describe(dev, line, sizeof(line)), 0);
	ck_assert_str_eq(line, "host-memory emulation (not a card), 1536 KiB");
	kvfpga_device_close(dev);
	dev = open_emulated(1ULL << 30);
	ck_assert_int_eq(kvfpga_device_describe(dev, line, sizeof(line)), 0);
	ck_assert_str_eq(line, "host-memory emulation (not a card), 1024 MiB");
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(emu_too_big_for_any_block)
{
	struct kvfpga_device *dev = open_emulated(1ULL << 20);
	struct kvfpga_device_info info = query(dev);
	struct kvfpga_bo *bo = NULL;

	/* Under mem_total but over the largest block: it can never fit. */
	ck_assert_uint_lt(info.max_bo_size + 4096, info.mem_total);
	ck_assert_int_eq(kvfpga_bo_create(dev, info.max_bo_size + 4096, 0, &bo), -E2BIG);
	ck_assert_ptr_null(bo);
	/* The first granule buffer lands right after the descriptor. */
	ck_assert_int_eq(kvfpga_bo_create(dev, 1, 0, &bo), 0);
	ck_assert_uint_eq(kvfpga_bo_card_addr(bo), 4096);
	kvfpga_bo_free(bo);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(emu_import_from_another_emulated_card)
{
	struct kvfpga_device *a = open_emulated(1ULL << 20), *b = open_emulated(1ULL << 20);
	struct kvfpga_device_info a_start = query(a), b_start = query(b);
	struct kvfpga_bo *bo, *imported;
	uint8_t *p, *q;
	int fd;

	ck_assert_int_eq(kvfpga_bo_create(a, 8192, 0, &bo), 0);
	p = map_bo(bo);
	fill_pattern(p, 8192, 5);
	ck_assert_int_eq(kvfpga_bo_export(bo, &fd), 0);
	ck_assert_int_eq(kvfpga_bo_import(b, fd, &imported), 0);
	close(fd);
	/* It holds no range of b's card. */
	ck_assert_uint_eq(kvfpga_bo_card_addr(imported), UINT64_MAX);
	ck_assert_uint_eq(query(b).mem_free, b_start.mem_free);
	ck_assert_uint_eq(query(b).bo_count, 0);
	q = map_bo(imported);
	ck_assert(has_pattern(q, 8192, 5));
	q[100] ^= 1;
	ck_assert_int_eq(p[100], q[100]);
	kvfpga_bo_free(bo);
	ck_assert_uint_eq(query(a).mem_free, a_start.mem_free);
	q[100] ^= 1;
	ck_assert(has_pattern(q, 8192, 5));
	kvfpga_bo_free(imported);
	kvfpga_device_close(a);
	kvfpga_device_close(b);
}
END_TEST

START_TEST(emu_import_rejects_what_it_did_not_export)
{
	struct kvfpga_device *dev = open_emulated(1ULL << 20);
	struct kvfpga_bo *bo = NULL;
	char file[64];
	int fd, sv[2];

	fd = memfd_create("unsealed", MFD_CLOEXEC);
	ck_assert_int_eq(ftruncate(fd, 4096), 0);
	ck_assert_int_eq(kvfpga_bo_import(dev, fd, &bo), -EINVAL);
	close(fd);
	fd = memfd_create("odd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	ck_assert_int_eq(ftruncate(fd, 100), 0);
	ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
	ck_assert_int_eq(kvfpga_bo_import(dev, fd, &bo), -EINVAL);
	close(fd);
	fd = memfd_create("empty", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), 0);
	ck_assert_int_eq(kvfpga_bo_import(dev, fd, &bo), -EINVAL);
	close(fd);
	snprintf(file, sizeof(file), "/tmp/kvfpga-test-import-%d", (int)getpid());
	fd = open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 4096), 0);
	ck_assert_int_eq(kvfpga_bo_import(dev, fd, &bo), -EINVAL);
	close(fd);
	unlink(file);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(kvfpga_bo_import(dev, sv[0], &bo), -EINVAL);
	close(sv[0]);
	close(sv[1]);
	ck_assert_ptr_null(bo);
	ck_assert_uint_eq(query(dev).bo_count, 0);
	kvfpga_device_close(dev);
}
END_TEST

START_TEST(emu_exported_memory_cannot_be_resized)
{
	struct kvfpga_device *dev = open_emulated(1ULL << 20);
	struct kvfpga_bo *bo;
	int fd;

	ck_assert_int_eq(kvfpga_bo_create(dev, 8192, 0, &bo), 0);
	ck_assert_int_eq(kvfpga_bo_export(bo, &fd), 0);
	/* An importer must not be able to pull the pages from under a mapping. */
	ck_assert_int_eq(ftruncate(fd, 4096), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(ftruncate(fd, 16384), -1);
	ck_assert_int_eq(errno, EPERM);
	close(fd);
	kvfpga_bo_free(bo);
	kvfpga_device_close(dev);
}
END_TEST

static Suite *device_suite(void)
{
	Suite *s = suite_create("device");
	TCase *tc;

	tc = tcase_create("opts");
	tcase_add_test(tc, opts_defaults);
	tcase_add_loop_test(tc, opts_device_good, 0,
	                    sizeof(good_devices) / sizeof(good_devices[0]));
	tcase_add_loop_test(tc, opts_device_bad, 0, sizeof(bad_devices) / sizeof(bad_devices[0]));
	tcase_add_loop_test(tc, opts_emu_mem_good, 0, sizeof(good_sizes) / sizeof(good_sizes[0]));
	tcase_add_loop_test(tc, opts_emu_mem_bad, 0, sizeof(bad_sizes) / sizeof(bad_sizes[0]));
	tcase_add_test(tc, opts_setters);
	tcase_add_test(tc, opts_env_reaches_the_device);
	suite_add_tcase(s, tc);

	tc = tcase_create("select");
	tcase_add_test(tc, open_rejects_bad_opts);
	tcase_add_test(tc, open_nodes_that_are_not_cards);
	tcase_add_test(tc, open_missing_cards);
	tcase_add_test(tc, auto_picks_card_else_emulation);
	tcase_add_test(tc, enumerate_is_consistent);
	tcase_add_test(tc, backend_names);
	tcase_add_test(tc, strerror_covers_every_error);
	suite_add_tcase(s, tc);

	tc = tcase_create("device");
	tcase_add_test(tc, query_is_sane);
	tcase_add_test(tc, card_is_enumerated);
	tcase_add_test(tc, describe_names_the_device);
	tcase_add_test(tc, bo_create_map_write_read_free);
	tcase_add_test(tc, bo_sizes_round_to_the_granule);
	tcase_add_test(tc, bo_memory_is_zeroed_on_reuse);
	tcase_add_test(tc, bad_arguments_change_nothing);
	tcase_add_test(tc, largest_buffer_fits_on_an_idle_device);
	tcase_add_test(tc, exhaustion_then_free_then_fill_again);
	tcase_add_test(tc, fragmentation_then_merge);
	tcase_add_test(tc, export_import_in_one_process);
	tcase_add_test(tc, device_outlives_close_while_buffers_live);
	tcase_add_test(tc, export_import_across_fork);
	tcase_add_test(tc, export_import_over_a_unix_socket);
	tcase_add_test(tc, threads_create_and_free_concurrently);
	suite_add_tcase(s, tc);

	tc = tcase_create("emulated");
	tcase_add_loop_test(tc, emu_layout, 0, sizeof(emu_layouts) / sizeof(emu_layouts[0]));
	tcase_add_test(tc, emu_describe_sizes);
	tcase_add_test(tc, emu_too_big_for_any_block);
	tcase_add_test(tc, emu_import_from_another_emulated_card);
	tcase_add_test(tc, emu_import_rejects_what_it_did_not_export);
	tcase_add_test(tc, emu_exported_memory_cannot_be_resized);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct kvfpga_open_opts opts;
	struct kvfpga_device *dev;
	SRunner *sr;
	char line[256];
	int failed, ret;

	if (getenv("KVFPGA_DEVICE"))
		saved_device_env = strdup(getenv("KVFPGA_DEVICE"));
	if (getenv("KVFPGA_EMU_MEM"))
		saved_emu_mem_env = strdup(getenv("KVFPGA_EMU_MEM"));
	/* Say which device the "device" tests run against. */
	ret = kvfpga_open_opts_init(&opts);
	if (!ret) {
		opts.emu_mem_size = TEST_EMU_MEM;
		ret = kvfpga_device_open(&opts, &dev);
	}
	if (!ret) {
		if (!kvfpga_device_describe(dev, line, sizeof(line)))
			printf("test_device: device tests run on %s\n", line);
		kvfpga_device_close(dev);
	} else {
		printf("test_device: cannot open the device: %s\n", kvfpga_strerror(ret));
	}
	fflush(stdout);

	sr = srunner_create(device_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	free(saved_device_env);
	free(saved_emu_mem_env);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
