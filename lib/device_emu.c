// SPDX-License-Identifier: MIT
/*
 * The emulated backend: a card's memory imitated in host memory, with the
 * driver's rules.  A virtual card address space of mem_size bytes (its
 * first KVFPGA_DESC_RESERVED bytes reserved, as the card descriptor's are)
 * is managed by a buddy allocator (emu_buddy.c), so buffers get the same
 * contiguous, granule-rounded card ranges, -E2BIG and -ENOSPC as on a
 * card.  Each buffer's bytes are its own sealed memfd: new ones read as
 * zero, export is a dup of it and import maps whatever memfd comes in.
 *
 * Like GEM objects, the memory behind a buffer is shared by every
 * kvfpga_bo that refers to it (the creator and imports into the same
 * device) and released with the last of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device_internal.h"
#include "emu_buddy.h"
#include "kvfpga_accel.h"
#include "kvfpga/kvfpga_card.h"

#define EMU_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

_Static_assert(KVFPGA_DESC_RESERVED % KVFPGA_EMU_GRANULE == 0,
               "the descriptor reservation must be whole granules");

/* The memory of one buffer; shared by the kvfpga_bo that refer to it. */
struct emu_mem {
	unsigned refs;
	int memfd;
	uint64_t size;
	uint64_t card_addr; /* UINT64_MAX when not in this device's address space */
	dev_t st_dev;       /* identify the memfd when it is imported back */
	ino_t st_ino;
	struct emu_mem *prev, *next;
};

struct emu_device {
	struct kvfpga_device base;
	uint64_t mem_size;
	uint64_t max_bo_size;
	pthread_mutex_t lock; /* guards everything below */
	struct emu_buddy *mm;
	uint32_t bo_count; /* memories holding a card range */
	struct emu_mem *mems;
};

struct emu_bo {
	struct kvfpga_bo base;
	struct emu_mem *mem;
};

static struct emu_device *to_emu(struct kvfpga_device *dev)
{
	return kvfpga_container_of(dev, struct emu_device, base);
}

static struct emu_bo *to_emu_bo(struct kvfpga_bo *bo)
{
	return kvfpga_container_of(bo, struct emu_bo, base);
}

static void emu_destroy(struct kvfpga_device *dev)
{
	struct emu_device *e = to_emu(dev);

	/* Every buffer held a reference, so no memory is left. */
	emu_buddy_fini(e->mm);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static int emu_query(struct kvfpga_device *dev, struct kvfpga_device_info *info)
{
	struct emu_device *e = to_emu(dev);
	struct kvfpga_device_info out = {
		.backend = KVFPGA_BACKEND_EMULATED,
		.abi_major = KVFPGA_ABI_MAJOR,
		.abi_minor = KVFPGA_ABI_MINOR,
		.capabilities =
		        KVFPGA_CAP_PRIME_EXPORT | KVFPGA_CAP_PRIME_IMPORT | KVFPGA_CAP_CONTIGUOUS,
		.mem_size = e->mem_size,
		.mem_total = e->mem_size - KVFPGA_DESC_RESERVED,
		.granule = KVFPGA_EMU_GRANULE,
		.max_bo_size = e->max_bo_size,
	};

	kvfpga_copy_string(out.name, sizeof(out.name), "kvfpga-emu");
	kvfpga_copy_string(out.serial, sizeof(out.serial), "emulated");
	pthread_mutex_lock(&e->lock);
	out.mem_free = emu_buddy_avail(e->mm);
	out.bo_count = e->bo_count;
	pthread_mutex_unlock(&e->lock);
	*info = out;
	return 0;
}

/* Point @b at @mem, whose fields are final. */
static void init_bo(struct emu_bo *b, struct emu_device *e, struct emu_mem *mem)
{
	b->base.dev = &e->base;
	b->base.size = mem->size;
	b->base.card_addr = mem->card_addr;
	b->base.map_fd = mem->memfd;
	b->base.map_offset = 0;
	b->base.map = NULL;
	b->mem = mem;
}

static void link_mem(struct emu_device *e, struct emu_mem *m)
{
	m->prev = NULL;
	m->next = e->mems;
	if (e->mems)
		e->mems->prev = m;
	e->mems = m;
}

static void unlink_mem(struct emu_device *e, struct emu_mem *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		e->mems = m->next;
	if (m->next)
		m->next->prev = m->prev;
}

/* A zero-filled memfd of @size bytes whose size can never change. */
static int create_memfd(uint64_t size, struct stat *st)
{
	int fd = memfd_create("kvfpga-emu-bo", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int ret;

	if (fd < 0)
		return -errno;
	/* Sealed, so no importer can shrink it under another's mapping (SIGBUS). */
	if (ftruncate(fd, (off_t)size) || fcntl(fd, F_ADD_SEALS, EMU_SEALS | F_SEAL_SEAL) ||
	    fstat(fd, st)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

static int emu_bo_create(struct kvfpga_device *dev, uint64_t size, uint32_t flags,
                         struct kvfpga_bo **out)
{
	struct emu_device *e = to_emu(dev);
	struct emu_mem *mem;
	struct emu_bo *b;
	struct stat st;
	uint64_t card_addr;
	int fd, ret;

	if (size > e->max_bo_size)
		return -E2BIG;
	size = (size + KVFPGA_EMU_GRANULE - 1) & ~(uint64_t)(KVFPGA_EMU_GRANULE - 1);
	mem = calloc(1, sizeof(*mem));
	b = calloc(1, sizeof(*b));
	if (!mem || !b) {
		ret = -ENOMEM;
		goto err_free;
	}
	/* The memfd is made outside the lock; only the card range needs it. */
	fd = create_memfd(size, &st);
	if (fd < 0) {
		ret = fd;
		goto err_free;
	}
	pthread_mutex_lock(&e->lock);
	ret = emu_buddy_alloc(e->mm, size, &card_addr);
	if (!ret) {
		mem->refs = 1;
		mem->memfd = fd;
		mem->size = size;
		mem->card_addr = card_addr;
		mem->st_dev = st.st_dev;
		mem->st_ino = st.st_ino;
		link_mem(e, mem);
		e->bo_count++;
	}
	pthread_mutex_unlock(&e->lock);
	if (ret) {
		close(fd);
		goto err_free;
	}
	init_bo(b, e, mem);
	*out = &b->base;
	return 0;

err_free:
	free(b);
	free(mem);
	return ret;
}

static struct emu_mem *find_mem(struct emu_device *e, const struct stat *st)
{
	for (struct emu_mem *m = e->mems; m; m = m->next) {
		if (m->st_dev == st->st_dev && m->st_ino == st->st_ino)
			return m;
	}
	return NULL;
}

static int emu_bo_import(struct kvfpga_device *dev, int fd, struct kvfpga_bo **out)
{
	struct emu_device *e = to_emu(dev);
	struct emu_mem *mem, *new_mem;
	struct emu_bo *b;
	struct stat st;
	int seals, own_fd;

	if (fstat(fd, &st))
		return -errno;
	/* Only what an emulated device exports: a sealed memfd of whole granules. */
	seals = S_ISREG(st.st_mode) ? fcntl(fd, F_GET_SEALS) : -1;
	if (seals < 0 || (seals & EMU_SEALS) != EMU_SEALS || st.st_size <= 0 ||
	    st.st_size % KVFPGA_EMU_GRANULE)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	new_mem = calloc(1, sizeof(*new_mem));
	own_fd = b && new_mem ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (own_fd < 0) {
		int ret = b && new_mem ? -errno : -ENOMEM;

		free(new_mem);
		free(b);
		return ret;
	}

	pthread_mutex_lock(&e->lock);
	mem = find_mem(e, &st);
	if (!mem) {
		/* Another process's buffer: its card range lives in that process's emulation. */
		mem = new_mem;
		mem->memfd = own_fd;
		mem->size = (uint64_t)st.st_size;
		mem->card_addr = UINT64_MAX;
		mem->st_dev = st.st_dev;
		mem->st_ino = st.st_ino;
		link_mem(e, mem);
		new_mem = NULL;
		own_fd = -1;
	}
	mem->refs++;
	pthread_mutex_unlock(&e->lock);

	/* Not needed when the memory was already known here. */
	if (own_fd >= 0)
		close(own_fd);
	free(new_mem);
	init_bo(b, e, mem);
	*out = &b->base;
	return 0;
}

static int emu_bo_export(struct kvfpga_bo *bo, int *fd)
{
	int dup_fd = fcntl(to_emu_bo(bo)->mem->memfd, F_DUPFD_CLOEXEC, 0);

	if (dup_fd < 0)
		return -errno;
	*fd = dup_fd;
	return 0;
}

static void emu_bo_release(struct kvfpga_bo *bo)
{
	struct emu_device *e = to_emu(bo->dev);
	struct emu_mem *mem = to_emu_bo(bo)->mem;
	bool last;

	pthread_mutex_lock(&e->lock);
	last = --mem->refs == 0;
	if (last) {
		unlink_mem(e, mem);
		if (mem->card_addr != UINT64_MAX) {
			emu_buddy_free(e->mm, mem->card_addr, NULL);
			e->bo_count--;
		}
	}
	pthread_mutex_unlock(&e->lock);
	if (last) {
		close(mem->memfd);
		free(mem);
	}
	free(to_emu_bo(bo));
}

static const struct kvfpga_device_ops emu_ops = {
	.destroy = emu_destroy,
	.query = emu_query,
	.bo_create = emu_bo_create,
	.bo_import = emu_bo_import,
	.bo_export = emu_bo_export,
	.bo_release = emu_bo_release,
};

int kvfpga_emu_open(uint64_t mem_size, struct kvfpga_device **out)
{
	struct emu_device *e;
	int ret;

	if (!kvfpga_emu_mem_size_valid(mem_size))
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	ret = emu_buddy_init(mem_size, KVFPGA_EMU_GRANULE, &e->mm);
	if (ret)
		goto err_free;
	/* The descriptor's bytes at the start of card memory are never given out. */
	ret = emu_buddy_alloc_range(e->mm, 0, KVFPGA_DESC_RESERVED);
	if (ret)
		goto err_fini;
	ret = pthread_mutex_init(&e->lock, NULL);
	if (ret) {
		ret = -ret;
		goto err_fini;
	}
	e->base.ops = &emu_ops;
	e->base.backend = KVFPGA_BACKEND_EMULATED;
	e->mem_size = mem_size;
	/* The largest block left after the reservation; nothing larger can ever fit. */
	e->max_bo_size = emu_buddy_largest_free(e->mm);
	*out = &e->base;
	return 0;

err_fini:
	emu_buddy_fini(e->mm);
err_free:
	free(e);
	return ret;
}
