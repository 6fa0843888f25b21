// SPDX-License-Identifier: MIT
/*
 * The device layer's common part: open options and their environment,
 * backend selection, argument checks, buffer mapping, enumeration of
 * kvfpga nodes, error text and the one-line description tools print.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "device_internal.h"
#include "kvfpga_accel.h"

void kvfpga_copy_string(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- open options ---- */

bool kvfpga_emu_mem_size_valid(uint64_t size)
{
	return size % KVFPGA_EMU_GRANULE == 0 && size >= KVFPGA_EMU_MIN_MEM &&
	       size <= KVFPGA_EMU_MAX_MEM;
}

/* "DDDD:BB:DD.F" or "BB:DD.F", hex; written normalised (lower case, 4-digit domain). */
static int parse_pci_slot(const char *spec, char *out, size_t len)
{
	unsigned long domain = 0, bus, devnum, fn;
	const char *p = spec;
	char *end;
	int colons = 0;

	for (const char *c = spec; *c; c++) {
		if (*c == ':')
			colons++;
		else if (*c != '.' && !isxdigit((unsigned char)*c))
			return -EINVAL;
	}
	if (colons == 2) {
		if (!isxdigit((unsigned char)*p))
			return -EINVAL;
		domain = strtoul(p, &end, 16);
		if (*end != ':' || end - p > 8)
			return -EINVAL;
		p = end + 1;
	} else if (colons != 1) {
		return -EINVAL;
	}
	if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || p[2] != ':')
		return -EINVAL;
	bus = strtoul(p, NULL, 16);
	p += 3;
	if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || p[2] != '.')
		return -EINVAL;
	devnum = strtoul(p, NULL, 16);
	p += 3;
	if (p[0] < '0' || p[0] > '7' || p[1] != '\0' || devnum > 0x1f)
		return -EINVAL;
	fn = (unsigned long)(p[0] - '0');
	if (snprintf(out, len, "%04lx:%02lx:%02lx.%lu", domain, bus, devnum, fn) >= (int)len)
		return -EINVAL;
	return 0;
}

int kvfpga_open_opts_set_device(struct kvfpga_open_opts *opts, const char *spec)
{
	struct kvfpga_open_opts next;

	if (!opts || !spec || !*spec)
		return -EINVAL;
	next = *opts;
	next.card_index = -1;
	next.pci_slot[0] = '\0';
	next.node[0] = '\0';
	if (!strcmp(spec, "auto")) {
		next.backend = KVFPGA_BACKEND_AUTO;
	} else if (!strcmp(spec, "emulated")) {
		next.backend = KVFPGA_BACKEND_EMULATED;
	} else if (!strcmp(spec, "card")) {
		next.backend = KVFPGA_BACKEND_CARD;
	} else if (spec[0] == '/') {
		if (strlen(spec) >= sizeof(next.node))
			return -EINVAL;
		next.backend = KVFPGA_BACKEND_CARD;
		kvfpga_copy_string(next.node, sizeof(next.node), spec);
	} else if (strspn(spec, "0123456789") == strlen(spec)) {
		char *end;
		unsigned long index;

		errno = 0;
		index = strtoul(spec, &end, 10);
		if (errno || *end || index > INT_MAX)
			return -EINVAL;
		next.backend = KVFPGA_BACKEND_CARD;
		next.card_index = (int)index;
	} else {
		if (parse_pci_slot(spec, next.pci_slot, sizeof(next.pci_slot)))
			return -EINVAL;
		next.backend = KVFPGA_BACKEND_CARD;
	}
	*opts = next;
	return 0;
}

/* "<bytes>[K|M|G|T]" (binary units, either case). */
static int parse_size(const char *spec, uint64_t *out)
{
	unsigned long long value;
	unsigned shift = 0;
	char *end;

	if (!isdigit((unsigned char)spec[0]))
		return -EINVAL;
	errno = 0;
	value = strtoull(spec, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K':
			shift = 10;
			break;
		case 'M':
			shift = 20;
			break;
		case 'G':
			shift = 30;
			break;
		case 'T':
			shift = 40;
			break;
		default:
			return -EINVAL;
		}
		if (end[1])
			return -EINVAL;
	}
	if (value > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)value << shift;
	return 0;
}

int kvfpga_open_opts_set_emu_mem(struct kvfpga_open_opts *opts, const char *spec)
{
	uint64_t size;

	if (!opts || !spec || parse_size(spec, &size) || !kvfpga_emu_mem_size_valid(size))
		return -EINVAL;
	opts->emu_mem_size = size;
	return 0;
}

int kvfpga_open_opts_init(struct kvfpga_open_opts *opts)
{
	struct kvfpga_open_opts next = {
		.backend = KVFPGA_BACKEND_AUTO,
		.card_index = -1,
		.emu_mem_size = KVFPGA_EMU_DEFAULT_MEM,
	};
	const char *device = getenv("KVFPGA_DEVICE");
	const char *emu_mem = getenv("KVFPGA_EMU_MEM");

	if (!opts)
		return -EINVAL;
	if (device && *device && kvfpga_open_opts_set_device(&next, device))
		return -EINVAL;
	if (emu_mem && *emu_mem && kvfpga_open_opts_set_emu_mem(&next, emu_mem))
		return -EINVAL;
	*opts = next;
	return 0;
}

/* ---- enumeration ---- */

void kvfpga_sysfs_pci_slot(dev_t rdev, char *buf, size_t len)
{
	char link[96], target[PATH_MAX];
	ssize_t n;
	const char *base;

	buf[0] = '\0';
	snprintf(link, sizeof(link), "/sys/dev/char/%u:%u/device", major(rdev), minor(rdev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return;
	target[n] = '\0';
	base = strrchr(target, '/');
	kvfpga_copy_string(buf, len, base ? base + 1 : target);
}

/* Driver of a node we may not open, from sysfs (e.g. .../device/driver -> kvfpga). */
static bool sysfs_driver_is_kvfpga(dev_t rdev)
{
	char link[96], target[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(link, sizeof(link), "/sys/dev/char/%u:%u/device/driver", major(rdev), minor(rdev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	base = strrchr(target, '/');
	return !strcmp(base ? base + 1 : target, "kvfpga");
}

struct node_candidate {
	char path[64];
	int kind; /* 0 accel, 1 render: accel nodes list first */
	unsigned minor;
	dev_t rdev;
};

struct candidate_list {
	struct node_candidate *items;
	size_t count, cap;
};

static int scan_dir(struct candidate_list *list, const char *dir, const char *prefix, int kind)
{
	size_t prefix_len = strlen(prefix);
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return (errno == ENOENT || errno == ENOTDIR) ? 0 : -errno;
	while ((de = readdir(d))) {
		struct node_candidate *c;
		struct stat st;
		const char *digits = de->d_name + prefix_len;

		if (strncmp(de->d_name, prefix, prefix_len) || !*digits ||
		    strspn(digits, "0123456789") != strlen(digits))
			continue;
		if (list->count == list->cap) {
			size_t cap = list->cap ? 2 * list->cap : 8;
			struct node_candidate *items = realloc(list->items, cap * sizeof(*items));

			if (!items) {
				closedir(d);
				return -ENOMEM;
			}
			list->items = items;
			list->cap = cap;
		}
		c = &list->items[list->count];
		if ((size_t)snprintf(c->path, sizeof(c->path), "%s/%s", dir, de->d_name) >=
		    sizeof(c->path))
			continue;
		if (stat(c->path, &st) || !S_ISCHR(st.st_mode))
			continue;
		c->kind = kind;
		c->rdev = st.st_rdev;
		c->minor = minor(st.st_rdev);
		list->count++;
	}
	closedir(d);
	return 0;
}

static int candidate_cmp(const void *a, const void *b)
{
	const struct node_candidate *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return x->minor < y->minor ? -1 : x->minor > y->minor;
}

static bool node_is_kvfpga(const struct node_candidate *c)
{
	int fd = open(c->path, O_RDWR | O_CLOEXEC);
	bool is_kvfpga;

	if (fd < 0)
		/* No access: still list it, so opening reports -EACCES rather than a fallback. */
		return sysfs_driver_is_kvfpga(c->rdev);
	is_kvfpga = kvfpga_drm_check_driver(fd) == 0;
	close(fd);
	return is_kvfpga;
}

int kvfpga_enumerate(struct kvfpga_card_entry *entries, size_t max, size_t *count)
{
	struct candidate_list list = { 0 };
	size_t found = 0;
	int ret;

	if (!count || (max && !entries))
		return -EINVAL;
	ret = scan_dir(&list, "/dev/accel", "accel", 0);
	if (!ret)
		ret = scan_dir(&list, "/dev/dri", "renderD", 1);
	if (ret) {
		free(list.items);
		return ret;
	}
	if (list.count)
		qsort(list.items, list.count, sizeof(*list.items), candidate_cmp);
	for (size_t i = 0; i < list.count; i++) {
		const struct node_candidate *c = &list.items[i];

		if (!node_is_kvfpga(c))
			continue;
		if (found < max) {
			struct kvfpga_card_entry *e = &entries[found];

			memset(e, 0, sizeof(*e));
			kvfpga_copy_string(e->node, sizeof(e->node), c->path);
			kvfpga_sysfs_pci_slot(c->rdev, e->pci_slot, sizeof(e->pci_slot));
			kvfpga_copy_string(e->driver, sizeof(e->driver), "kvfpga");
		}
		found++;
	}
	free(list.items);
	*count = found;
	return 0;
}

/* ---- opening ---- */

static bool string_fits(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

/* The node of the card @opts selects (index, slot or first). */
static int find_card_node(const struct kvfpga_open_opts *opts, char *node, size_t len)
{
	struct kvfpga_card_entry *entries;
	size_t count, found, pick = SIZE_MAX;
	int ret = kvfpga_enumerate(NULL, 0, &count);

	if (ret)
		return ret;
	if (count == 0)
		return -ENODEV;
	entries = calloc(count, sizeof(*entries));
	if (!entries)
		return -ENOMEM;
	ret = kvfpga_enumerate(entries, count, &found);
	if (ret) {
		free(entries);
		return ret;
	}
	/* Cards may come or go between the two scans: use what was written. */
	if (found < count)
		count = found;
	for (size_t i = 0; i < count && pick == SIZE_MAX; i++) {
		if (opts->pci_slot[0] ? !strcmp(entries[i].pci_slot, opts->pci_slot)
		                      : opts->card_index < 0 || (size_t)opts->card_index == i)
			pick = i;
	}
	if (pick != SIZE_MAX)
		kvfpga_copy_string(node, len, entries[pick].node);
	free(entries);
	return pick == SIZE_MAX ? -ENODEV : 0;
}

static int open_card(const struct kvfpga_open_opts *opts, struct kvfpga_device **out)
{
	char node[sizeof(opts->node)];
	int ret;

	if (opts->node[0])
		return kvfpga_drm_open(opts->node, out);
	ret = find_card_node(opts, node, sizeof(node));
	if (ret)
		return ret;
	return kvfpga_drm_open(node, out);
}

int kvfpga_device_open(const struct kvfpga_open_opts *opts, struct kvfpga_device **out)
{
	struct kvfpga_device *dev = NULL;
	bool has_selector;
	int selectors, ret;

	if (!opts || !out || !string_fits(opts->pci_slot, sizeof(opts->pci_slot)) ||
	    !string_fits(opts->node, sizeof(opts->node)) || opts->card_index < -1)
		return -EINVAL;
	selectors = (opts->card_index >= 0) + (opts->pci_slot[0] != '\0') + (opts->node[0] != '\0');
	if (selectors > 1)
		return -EINVAL;
	has_selector = selectors == 1;

	switch (opts->backend) {
	case KVFPGA_BACKEND_CARD:
		ret = open_card(opts, &dev);
		break;
	case KVFPGA_BACKEND_EMULATED:
		if (has_selector || !kvfpga_emu_mem_size_valid(opts->emu_mem_size))
			return -EINVAL;
		ret = kvfpga_emu_open(opts->emu_mem_size, &dev);
		break;
	case KVFPGA_BACKEND_AUTO: {
		size_t count;

		if (has_selector) {
			ret = open_card(opts, &dev);
			break;
		}
		if (!kvfpga_emu_mem_size_valid(opts->emu_mem_size))
			return -EINVAL;
		ret = kvfpga_enumerate(NULL, 0, &count);
		if (ret)
			return ret;
		ret = count ? open_card(opts, &dev) : kvfpga_emu_open(opts->emu_mem_size, &dev);
		break;
	}
	default:
		return -EINVAL;
	}
	if (ret)
		return ret;
	atomic_init(&dev->refs, 1);
	*out = dev;
	return 0;
}

static void device_get(struct kvfpga_device *dev)
{
	atomic_fetch_add(&dev->refs, 1);
}

static void device_put(struct kvfpga_device *dev)
{
	if (atomic_fetch_sub(&dev->refs, 1) == 1)
		dev->ops->destroy(dev);
}

void kvfpga_device_close(struct kvfpga_device *dev)
{
	if (dev)
		device_put(dev);
}

int kvfpga_device_query(struct kvfpga_device *dev, struct kvfpga_device_info *info)
{
	if (!dev || !info)
		return -EINVAL;
	return dev->ops->query(dev, info);
}

const char *kvfpga_backend_name(enum kvfpga_backend backend)
{
	switch (backend) {
	case KVFPGA_BACKEND_AUTO:
		return "auto";
	case KVFPGA_BACKEND_CARD:
		return "card";
	case KVFPGA_BACKEND_EMULATED:
		return "emulated";
	}
	return "unknown";
}

/* Whole MiB when exact ("256 MiB"), else KiB, else bytes. */
static void format_size(char *buf, size_t len, uint64_t bytes)
{
	if (bytes && bytes % (1ULL << 20) == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
	else if (bytes && bytes % 1024 == 0)
		snprintf(buf, len, "%llu KiB", (unsigned long long)(bytes >> 10));
	else
		snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
}

int kvfpga_device_describe(struct kvfpga_device *dev, char *buf, size_t len)
{
	struct kvfpga_device_info info;
	char size[32], line[256];
	int n, ret;

	if (!dev || !buf || len == 0)
		return -EINVAL;
	ret = kvfpga_device_query(dev, &info);
	if (ret)
		return ret;
	format_size(size, sizeof(size), info.mem_size);
	if (info.backend == KVFPGA_BACKEND_EMULATED)
		n = snprintf(line, sizeof(line), "host-memory emulation (not a card), %s", size);
	else
		n = snprintf(line, sizeof(line), "card %s (%s) '%s' %s",
		             info.pci_slot[0] ? info.pci_slot : "(no PCI slot)", info.node,
		             info.name, size);
	if (n < 0 || (size_t)n >= len)
		return -ERANGE;
	memcpy(buf, line, (size_t)n + 1);
	return 0;
}

/* ---- buffers ---- */

int kvfpga_bo_create(struct kvfpga_device *dev, uint64_t size, uint32_t flags,
                     struct kvfpga_bo **out)
{
	int ret;

	if (!dev || !out || size == 0 || (flags & ~KVFPGA_BO_FLAGS_VALID))
		return -EINVAL;
	ret = dev->ops->bo_create(dev, size, flags, out);
	if (!ret)
		device_get(dev);
	return ret;
}

int kvfpga_bo_import(struct kvfpga_device *dev, int fd, struct kvfpga_bo **out)
{
	int ret;

	if (!dev || fd < 0 || !out)
		return -EINVAL;
	ret = dev->ops->bo_import(dev, fd, out);
	if (!ret)
		device_get(dev);
	return ret;
}

int kvfpga_bo_export(struct kvfpga_bo *bo, int *fd)
{
	if (!bo || !fd)
		return -EINVAL;
	return bo->dev->ops->bo_export(bo, fd);
}

int kvfpga_bo_map(struct kvfpga_bo *bo, void **ptr)
{
	void *map;

	if (!bo || !ptr)
		return -EINVAL;
	if (!bo->map) {
		map = mmap(NULL, bo->size, PROT_READ | PROT_WRITE, MAP_SHARED, bo->map_fd,
		           (off_t)bo->map_offset);
		if (map == MAP_FAILED)
			return -errno;
		bo->map = map;
	}
	*ptr = bo->map;
	return 0;
}

int kvfpga_bo_unmap(struct kvfpga_bo *bo)
{
	if (!bo || !bo->map)
		return -EINVAL;
	if (munmap(bo->map, bo->size))
		return -errno;
	bo->map = NULL;
	return 0;
}

void kvfpga_bo_free(struct kvfpga_bo *bo)
{
	struct kvfpga_device *dev;

	if (!bo)
		return;
	if (bo->map)
		munmap(bo->map, bo->size);
	bo->map = NULL;
	dev = bo->dev;
	dev->ops->bo_release(bo);
	device_put(dev);
}

uint64_t kvfpga_bo_size(const struct kvfpga_bo *bo)
{
	return bo ? bo->size : 0;
}

uint64_t kvfpga_bo_card_addr(const struct kvfpga_bo *bo)
{
	return bo ? bo->card_addr : UINT64_MAX;
}

/* ---- errors ---- */

struct error_text {
	int err;
	const char *text;
};

/* The errors this library returns, in words that say what to do about them. */
static const struct error_text error_texts[] = {
	{ EINVAL, "invalid argument" },
	{ ENOMEM, "out of host memory" },
	{ ENODEV, "no such kvfpga card, or the node is not one (KVFPGA_DEVICE=emulated selects "
	          "host-memory emulation)" },
	{ EPROTO, "kvfpga driver ABI major version differs from this library's; update one "
	          "of them so they match" },
	{ E2BIG, "buffer larger than the card can ever hold (see max_bo_size)" },
	{ ENOSPC, "card memory exhausted: no free range large enough" },
	{ EACCES, "permission denied opening the device node (check its group, e.g. render)" },
	{ EPERM, "operation not permitted" },
	{ ENOENT, "no such device node" },
	{ EBADF, "not an open file descriptor" },
	{ EMFILE, "too many open files in this process" },
	{ ENFILE, "too many open files in the system" },
	{ ERANGE, "output buffer too small" },
	{ ENOTTY, "not a kvfpga device (ioctl not supported)" },
	{ EOPNOTSUPP, "operation not supported by this device" },
	{ EIO, "I/O error from the card" },
	{ EFAULT, "bad address" },
	{ EBUSY, "device busy" },
	{ EINTR, "interrupted" },
	{ ENXIO, "device gone (unplugged or driver unbound)" },
};

const char *kvfpga_strerror(int err)
{
	const char *text;

	if (err == 0)
		return "success";
	/* Accept errno's sign too, so a positive errno still reads right. */
	if (err == INT_MIN)
		return "unknown error";
	if (err < 0)
		err = -err;
	for (size_t i = 0; i < sizeof(error_texts) / sizeof(error_texts[0]); i++) {
		if (error_texts[i].err == err)
			return error_texts[i].text;
	}
	text = strerrordesc_np(err);
	return text ? text : "unknown error";
}
