/* SPDX-License-Identifier: MIT */
/*
 * libkvfpga: the kvfpga card from userspace.
 *
 * Conventions for every function in this library: it returns 0 or a
 * negative errno (never prints); out-parameters are written only on
 * success; a NULL object argument is -EINVAL.
 *
 * Thread safety: a struct kvfpga_device may be used from several threads
 * at once (buffer create/free/import and queries).  A struct kvfpga_bo is
 * owned by one thread at a time; its mapped memory may be read and
 * written from any thread.
 */
#ifndef KVFPGA_KVFPGA_H
#define KVFPGA_KVFPGA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVFPGA_VERSION_MAJOR 0
#define KVFPGA_VERSION_MINOR 1
#define KVFPGA_VERSION_PATCH 0

struct kvfpga_device;
struct kvfpga_bo;

enum kvfpga_backend {
	/* A card if one is present, else host-memory emulation. */
	KVFPGA_BACKEND_AUTO = 0,
	/* A kvfpga card through the kernel driver; -ENODEV if none. */
	KVFPGA_BACKEND_CARD,
	/* Host-memory emulation of a card (memfd-backed, not a card). */
	KVFPGA_BACKEND_EMULATED,
};

/*
 * How to open a device.  Initialise with kvfpga_open_opts_init(), which
 * also applies the environment:
 *   KVFPGA_DEVICE=emulated       force host emulation
 *   KVFPGA_DEVICE=card           force a card (first one)
 *   KVFPGA_DEVICE=<N>            card number N in enumeration order
 *   KVFPGA_DEVICE=<pci slot>     e.g. 0000:00:04.0
 *   KVFPGA_DEVICE=/dev/...       an explicit device node
 *   KVFPGA_EMU_MEM=<bytes>[K|M|G] size of the emulated card
 */
struct kvfpga_open_opts {
	enum kvfpga_backend backend;
	int card_index;        /* card number, or -1 for "first" */
	char pci_slot[32];     /* "" or a PCI slot name */
	char node[64];         /* "" or a device node path */
	uint64_t emu_mem_size; /* bytes of emulated card memory */
};

#define KVFPGA_EMU_DEFAULT_MEM (1ULL << 30)
#define KVFPGA_EMU_GRANULE     4096u
/* Emulated card sizes: a multiple of the granule in [MIN, MAX]. */
#define KVFPGA_EMU_MIN_MEM (2ULL * KVFPGA_EMU_GRANULE)
#define KVFPGA_EMU_MAX_MEM (1ULL << 40)

/*
 * Defaults (AUTO, first card, KVFPGA_EMU_DEFAULT_MEM), then KVFPGA_DEVICE /
 * KVFPGA_EMU_MEM; an empty variable counts as unset.  -EINVAL on a bad
 * value (and *opts is left untouched).
 */
int kvfpga_open_opts_init(struct kvfpga_open_opts *opts);
/*
 * Select the device as KVFPGA_DEVICE does (also "auto"); for tools' options.
 * A PCI slot may omit the domain ("00:04.0" means "0000:00:04.0").  Replaces
 * the backend and card selectors, keeps emu_mem_size.  -EINVAL on a bad spec.
 */
int kvfpga_open_opts_set_device(struct kvfpga_open_opts *opts, const char *spec);
/* Set emu_mem_size as KVFPGA_EMU_MEM does.  -EINVAL on a bad spec. */
int kvfpga_open_opts_set_emu_mem(struct kvfpga_open_opts *opts, const char *spec);

/*
 * Open the device @opts selects.  AUTO opens the first card when
 * kvfpga_enumerate() finds one (a card selector in @opts makes it CARD) and
 * falls back to emulation only when none is found.  Errors: -ENODEV no such
 * card or the node is not a kvfpga device, -EPROTO the driver's ABI major
 * version differs from KVFPGA_ABI_MAJOR, -EACCES/-ENOENT from opening the
 * node, -EINVAL bad options.
 */
int kvfpga_device_open(const struct kvfpga_open_opts *opts, struct kvfpga_device **out);
/*
 * Drop the caller's reference; the device goes once its last buffer is
 * freed too.  NULL is a no-op.  Neither a device nor its buffers may be
 * used in a child after fork(): the child opens its own device and
 * imports what it needs (kvfpga_bo_export + SCM_RIGHTS or inheritance).
 */
void kvfpga_device_close(struct kvfpga_device *dev);

struct kvfpga_device_info {
	enum kvfpga_backend backend; /* CARD or EMULATED, never AUTO */
	uint32_t abi_major, abi_minor;
	uint64_t capabilities; /* KVFPGA_CAP_* from the uapi */
	uint64_t mem_size;     /* card memory in the descriptor */
	uint64_t mem_total;    /* bytes usable by buffers */
	uint64_t mem_free;
	uint64_t granule;
	uint64_t max_bo_size;
	uint32_t bo_count;
	char name[32];
	char serial[32];
	char node[64];     /* device node, "" when emulated */
	char pci_slot[32]; /* "" when emulated */
};

int kvfpga_device_query(struct kvfpga_device *dev, struct kvfpga_device_info *info);
const char *kvfpga_backend_name(enum kvfpga_backend backend);

/*
 * One line describing the device, for tools to announce which one they use:
 * "card 0000:00:04.0 (/dev/accel/accel0) 'kvfpga-sim' 256 MiB" or
 * "host-memory emulation (not a card), 1024 MiB".  -ERANGE (and @buf
 * untouched) when @len is too small.
 */
int kvfpga_device_describe(struct kvfpga_device *dev, char *buf, size_t len);

struct kvfpga_card_entry {
	char node[64];
	char pci_slot[32];
	char driver[32];
};

/*
 * Cards driven by kvfpga, in a stable order (/dev/accel/accel* then
 * /dev/dri/renderD*, by minor).  Writes at most @max entries, sets *@count
 * to the number found (which may exceed @max).  @entries may be NULL when
 * @max is 0 (just count).  A node this process may not open is listed when
 * sysfs names kvfpga as its driver, so opening it reports -EACCES.
 */
int kvfpga_enumerate(struct kvfpga_card_entry *entries, size_t max, size_t *count);

/* Buffers in card memory.  Contents start zeroed; size rounds up to the granule. */
int kvfpga_bo_create(struct kvfpga_device *dev, uint64_t size, uint32_t flags,
                     struct kvfpga_bo **out);
/*
 * Buffer creation errors: -EINVAL size 0 or unknown flags, -E2BIG larger
 * than the card could ever hold (max_bo_size), -ENOSPC no free range is
 * large enough now.
 */
/* Map (write-combined on a card).  Mapping twice returns the same address. */
int kvfpga_bo_map(struct kvfpga_bo *bo, void **ptr);
/* -EINVAL when not mapped. */
int kvfpga_bo_unmap(struct kvfpga_bo *bo);
/* Unmaps if mapped and releases the buffer. NULL is a no-op. */
void kvfpga_bo_free(struct kvfpga_bo *bo);
/* Bytes (a multiple of the granule); 0 for NULL. */
uint64_t kvfpga_bo_size(const struct kvfpga_bo *bo);
/*
 * Offset of the buffer in card memory; UINT64_MAX for NULL and for an
 * emulated buffer imported from another process (its range belongs to that
 * process's emulated card).
 */
uint64_t kvfpga_bo_card_addr(const struct kvfpga_bo *bo);
/* dma-buf fd (a memfd when emulated); the caller owns and closes it. */
int kvfpga_bo_export(struct kvfpga_bo *bo, int *fd);
/*
 * Import a buffer exported from the same card (or emulation); fd stays the
 * caller's.  Importing a buffer this device already holds gives a second
 * handle to the same memory (no card memory is taken).  -EINVAL when @fd is
 * not such a buffer, -EBADF when it is not an open fd.
 */
int kvfpga_bo_import(struct kvfpga_device *dev, int fd, struct kvfpga_bo **out);

/* Error text for a negative errno from this library (never NULL). */
const char *kvfpga_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* KVFPGA_KVFPGA_H */
