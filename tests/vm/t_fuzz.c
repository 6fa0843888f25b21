/* SPDX-License-Identifier: MIT */
/*
 * In-VM uapi fuzzer.  Several worker processes (half of them root, half
 * dropped to an unprivileged uid after opening their device files) issue
 * random and mutated calls against both cards for a time and call budget:
 * the driver's ioctls with valid and invalid handles, sizes, flags and pads;
 * the DRM core ioctls a render/accel client reaches (GEM_CLOSE, PRIME both
 * ways, VERSION, GET_CAP, ...); ioctl numbers drawn at random over the whole
 * DRM range with random sizes, directions and contents; mmap/munmap/mremap/
 * mprotect/madvise of buffers through device and dma-buf fds at random
 * offsets and sizes; dma-buf export, import (same and other card) and
 * dma-buf ioctls; fdinfo and debugfs reads; fork (children that run a while,
 * are killed, or outlive their calls); fds closed at random; and, from one
 * root worker, faults armed through debugfs fail_nth.
 *
 * Each worker keeps an exact model of what it holds (objects, handles per
 * file, dma-buf fds, mappings) and checks every well-formed call against it:
 * the errno a call must give, that a mapping succeeds exactly when the file
 * holds the buffer and the range is one the DRM core allows, that a new
 * buffer reads zero, that the tag words it wrote into each of its buffers
 * never change (no other buffer overlaps it), that fdinfo counts exactly its
 * handles, and that touching a valid mapping never faults.  Random raw ioctls go to a
 * separate "chaos" file that the model does not track.
 *
 * Afterwards both cards must be idle (MEM_FREE == MEM_TOTAL, BO_COUNT == 0)
 * and a quick functional check (create, map, write, read, seen by the host)
 * must pass.  Environment: KVFPGA_FUZZ_SECONDS (default 40), KVFPGA_FUZZ_CALLS
 * (default 20000000), KVFPGA_FUZZ_WORKERS (default 4), KVFPGA_FUZZ_SEED
 * (default: from the clock; printed, and replays each worker's call sequence
 * up to where timing between processes makes it diverge), KVFPGA_FUZZ_FAULTS
 * (default 1; 0: never arm fail_nth, which is device-wide and would also fail
 * other processes' calls when the fuzzer shares the card with them).
 */
#include <linux/dma-buf.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "vt_debugfs.h"

#define MiB  (1024ULL * 1024ULL)
#define PAGE 4096ULL

#define MAX_FILES   8
#define MAX_OBJS    24
#define MAX_HANDLES 64
#define MAX_MAPS    48
#define MAX_BUFS    16
#define MAX_KIDS    4
#define POOL_FDS    64

enum card { CARD_MAIN, CARD_SECOND, N_CARDS };
static const char *const card_slot[N_CARDS] = { VT_SLOT_MAIN, VT_SLOT_SECOND };

enum op {
	OP_CREATE,
	OP_GEM_CLOSE,
	OP_BO_INFO,
	OP_PARAM,
	OP_EXPORT,
	OP_IMPORT,
	OP_MMAP_DEV,
	OP_MMAP_BUF,
	OP_TOUCH,
	OP_MUNMAP,
	OP_REMAP,
	OP_VERIFY,
	OP_RAW_IOCTL,
	OP_DMABUF_IOCTL,
	OP_FDINFO,
	OP_DEBUGFS,
	OP_FORK,
	OP_CLOSE_FD,
	OP_ARM_FAULT,
	N_OPS
};

static const char *const op_name[N_OPS] = {
	"create",   "gem_close", "bo_info", "param",    "export",    "import",    "mmap_dev",
	"mmap_buf", "touch",     "munmap",  "remap",    "verify",    "raw_ioctl", "dmabuf_ioctl",
	"fdinfo",   "debugfs",   "fork",    "close_fd", "arm_fault",
};

/* Relative frequencies. */
static const unsigned int op_weight[N_OPS] = {
	[OP_CREATE] = 12,    [OP_GEM_CLOSE] = 8,    [OP_BO_INFO] = 6,   [OP_PARAM] = 5,
	[OP_EXPORT] = 6,     [OP_IMPORT] = 6,       [OP_MMAP_DEV] = 9,  [OP_MMAP_BUF] = 5,
	[OP_TOUCH] = 9,      [OP_MUNMAP] = 6,       [OP_REMAP] = 4,     [OP_VERIFY] = 3,
	[OP_RAW_IOCTL] = 12, [OP_DMABUF_IOCTL] = 3, [OP_FDINFO] = 3,    [OP_DEBUGFS] = 1,
	[OP_FORK] = 1,       [OP_CLOSE_FD] = 2,     [OP_ARM_FAULT] = 1,
};

/* Per-worker results, in memory shared with the parent (and the worker's children). */
struct wstats {
	uint64_t calls; /* system calls made */
	uint64_t ops[N_OPS];
	uint64_t ok; /* calls that succeeded */
	uint64_t forks, kills, faults_armed;
	uint32_t failures;
	uint32_t done;
	char first_failure[384];
};

struct card_info {
	uint64_t granule, max_bo, mem_size;
};

struct file_slot {
	int fd; /* -1: empty */
	int card;
};

struct obj {
	bool used;
	int card;
	uint64_t tag, size, card_addr, mmap_offset;
};

struct handle {
	bool used;
	int file, obj;
	uint32_t h;
};

struct map {
	bool used;
	uint8_t *addr;
	size_t len;
	int obj;
	uint64_t obj_off;
	int prot;
};

struct buf {
	bool used;
	int fd, obj;
	bool writable;
};

struct worker {
	int id;
	bool root, child;
	bool faults; /* may arm fail_nth (KVFPGA_FUZZ_FAULTS) */
	uint64_t rng;
	uint64_t op_index;
	uint64_t budget;     /* calls this worker may make */
	struct timespec end; /* deadline */
	struct wstats *st;
	struct card_info card[N_CARDS];
	struct file_slot files[MAX_FILES];
	int chaos[N_CARDS];          /* untracked files for random raw ioctls */
	int pool[N_CARDS][POOL_FDS]; /* pre-opened files for unprivileged workers */
	int pool_n[N_CARDS];
	struct obj objs[MAX_OBJS];
	struct handle handles[MAX_HANDLES];
	struct map maps[MAX_MAPS];
	struct buf bufs[MAX_BUFS];
	pid_t kids[MAX_KIDS];
	uint64_t serial;
	char debugfs[N_CARDS][PATH_MAX];
	uint8_t *scratch; /* random ioctl arguments */
	uint8_t *target;  /* where valid pointers inside them point */
};

static uint64_t g_seed;

/* ---- randomness ---- */

static uint64_t rnd(struct worker *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(struct worker *w, uint64_t n)
{
	return n ? rnd(w) % n : 0;
}

static bool chance(struct worker *w, unsigned int percent)
{
	return below(w, 100) < percent;
}

/* A 64-bit value that is often at a boundary. */
static uint64_t interesting(struct worker *w)
{
	static const uint64_t special[] = { 0,          1,          2,
		                            3,          7,          8,
		                            0xff,       0x100,      0xfff,
		                            0x1000,     0x1001,     0x7fffffff,
		                            0x80000000, 0xffffffff, 0x100000000ULL,
		                            1ULL << 40, 1ULL << 62, 1ULL << 63,
		                            ~0ULL,      ~0ULL - 1,  ~0ULL - 0xfff };

	switch (below(w, 5)) {
	case 0:
		return special[below(w, sizeof(special) / sizeof(special[0]))];
	case 1:
		return below(w, 64);
	case 2:
		return below(w, 1 << 20) * PAGE;
	case 3:
		return rnd(w) | (1ULL << 63);
	default:
		return rnd(w);
	}
}

/* ---- bookkeeping ---- */

/* A violated expectation: counted, the first one kept for the parent to report. */
static void worker_fail(struct worker *w, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void worker_fail(struct worker *w, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	uint32_t n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = __atomic_fetch_add(&w->st->failures, 1, __ATOMIC_SEQ_CST);
	if (n == 0)
		snprintf(w->st->first_failure, sizeof(w->st->first_failure),
		         "worker %d%s op %llu (seed %llu): %s", w->id, w->child ? " child" : "",
		         (unsigned long long)w->op_index, (unsigned long long)g_seed, msg);
	if (n < 5)
		printf("fuzz: worker %d%s op %llu: %s\n", w->id, w->child ? " child" : "",
		       (unsigned long long)w->op_index, msg);
}

/* Count one system call and its outcome; returns @ret. */
static long counted(struct worker *w, long ret)
{
	__atomic_fetch_add(&w->st->calls, 1, __ATOMIC_RELAXED);
	if (ret >= 0)
		__atomic_fetch_add(&w->st->ok, 1, __ATOMIC_RELAXED);
	return ret;
}

/* Raw ioctl (no restart loop: a random call may keep answering EAGAIN). */
static int xioctl(struct worker *w, int fd, unsigned long req, void *arg)
{
	int ret = ioctl(fd, req, arg);

	counted(w, ret);
	return ret < 0 ? -errno : ret;
}

static int obj_new(struct worker *w, int card, const struct drm_kvfpga_bo_create *c)
{
	for (int i = 0; i < MAX_OBJS; i++) {
		if (w->objs[i].used)
			continue;
		w->objs[i] = (struct obj){ true, card, 0, c->size, c->card_addr, c->mmap_offset };
		w->objs[i].tag = ((uint64_t)(w->id + 1) << 56) | (++w->serial << 8) | 0xa5;
		return i;
	}
	return -1;
}

/* Forget an object once nothing of this process refers to it any more. */
static void obj_maybe_drop(struct worker *w, int o)
{
	if (o < 0 || !w->objs[o].used)
		return;
	for (int i = 0; i < MAX_HANDLES; i++)
		if (w->handles[i].used && w->handles[i].obj == o)
			return;
	for (int i = 0; i < MAX_MAPS; i++)
		if (w->maps[i].used && w->maps[i].obj == o)
			return;
	for (int i = 0; i < MAX_BUFS; i++)
		if (w->bufs[i].used && w->bufs[i].obj == o)
			return;
	w->objs[o].used = false;
}

static int live_objs(struct worker *w)
{
	int n = 0;

	for (int i = 0; i < MAX_OBJS; i++)
		n += w->objs[i].used;
	return n;
}

static int handle_find(struct worker *w, int file, uint32_t h)
{
	for (int i = 0; i < MAX_HANDLES; i++)
		if (w->handles[i].used && w->handles[i].file == file && w->handles[i].h == h)
			return i;
	return -1;
}

static int handle_of_obj(struct worker *w, int file, int o)
{
	for (int i = 0; i < MAX_HANDLES; i++)
		if (w->handles[i].used && w->handles[i].file == file && w->handles[i].obj == o)
			return i;
	return -1;
}

static int handle_add(struct worker *w, int file, uint32_t h, int o)
{
	for (int i = 0; i < MAX_HANDLES; i++) {
		if (w->handles[i].used)
			continue;
		w->handles[i] = (struct handle){ true, file, o, h };
		return i;
	}
	return -1;
}

static void handle_forget(struct worker *w, int i)
{
	int o = w->handles[i].obj;

	w->handles[i].used = false;
	obj_maybe_drop(w, o);
}

/* A random used entry of @n slots of @stride bytes (each starts with its bool used). */
static int pick(struct worker *w, const void *base, size_t stride, int n)
{
	int start = (int)below(w, (uint64_t)n);

	for (int k = 0; k < n; k++) {
		int i = (start + k) % n;

		if (*(const bool *)((const char *)base + (size_t)i * stride))
			return i;
	}
	return -1;
}

#define PICK(w, arr, n) pick(w, (arr), sizeof((arr)[0]), (n))

static int pick_file(struct worker *w)
{
	int start = (int)below(w, MAX_FILES);

	for (int k = 0; k < MAX_FILES; k++) {
		int i = (start + k) % MAX_FILES;

		if (w->files[i].fd >= 0)
			return i;
	}
	return -1;
}

static int open_card(struct worker *w, int card)
{
	int fd;

	if (!w->root) {
		/* A child must not take one: the parent may hand it out later. */
		if (w->child)
			return -EPERM;
		return w->pool_n[card] ? w->pool[card][--w->pool_n[card]] : -ENOENT;
	}
	fd = vt_open_slot(card_slot[card]);
	counted(w, fd);
	return fd;
}

/* ---- signals: a touch of a valid mapping must never fault ---- */

static sigjmp_buf touch_env;
static volatile sig_atomic_t touching;

static void on_fault(int sig)
{
	if (touching)
		siglongjmp(touch_env, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_fault_handler(void)
{
	struct sigaction sa = { .sa_handler = on_fault };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/*
 * Read (and, when @write, write outside the tag words) a few places of
 * mapping @m; checks the tag words it covers.  Returns the signal taken, or 0.
 */
static int touch_map(struct worker *w, struct map *m, bool write)
{
	const struct obj *o = &w->objs[m->obj];
	volatile uint8_t *p = m->addr;
	size_t pos[4];
	int sig;

	pos[0] = 0;
	pos[1] = m->len - 8;
	pos[2] = below(w, m->len / 8) * 8;
	pos[3] = below(w, m->len / 8) * 8;
	touching = 1;
	sig = sigsetjmp(touch_env, 1);
	if (sig == 0) {
		for (int i = 0; i < 4; i++) {
			uint64_t at = m->obj_off + pos[i];
			uint64_t v = *(volatile uint64_t *)(p + pos[i]);

			if ((at == 0 || at == o->size - 8) && v != o->tag)
				worker_fail(w,
				            "tag of buffer at card %#llx reads %#llx, wrote %#llx",
				            (unsigned long long)o->card_addr, (unsigned long long)v,
				            (unsigned long long)o->tag);
			if (write && at != 0 && at != o->size - 8)
				*(volatile uint64_t *)(p + pos[i]) = rnd(w);
		}
	}
	touching = 0;
	return sig;
}

/* ---- operations on the tracked model ---- */

static void release_some(struct worker *w);

static void create_checked(struct worker *w)
{
	int f = pick_file(w);
	struct drm_kvfpga_bo_create c;
	const struct card_info *ci;
	uint64_t want, granule;
	int expect = 0, ret, o = -1;
	uint8_t *m;

	if (f < 0)
		return;
	if (live_objs(w) >= MAX_OBJS - 2) {
		/* The model is full: let go of something instead. */
		release_some(w);
		return;
	}
	ci = &w->card[w->files[f].card];
	granule = ci->granule;
	memset(&c, 0, sizeof(c));
	switch (below(w, 10)) {
	case 0:
		c.size = interesting(w);
		break;
	case 1:
		c.size = below(w, 2) ? ci->max_bo : ci->max_bo + 1 + below(w, granule);
		break;
	case 2:
	case 3:
		c.size = 1 + below(w, 4 * MiB);
		break;
	case 4:
		c.size = 1 + below(w, ci->max_bo / 8);
		break;
	default:
		c.size = 1 + below(w, 64 * PAGE);
		break;
	}
	if (chance(w, 8))
		c.flags = (uint32_t)interesting(w) | 1;
	/* Output fields hold garbage on input: it must not matter. */
	if (chance(w, 30)) {
		c.handle = (uint32_t)rnd(w);
		c.card_addr = rnd(w);
		c.mmap_offset = rnd(w);
	}
	if (c.flags)
		expect = -EINVAL;
	else if (!c.size)
		expect = -EINVAL;
	else if (c.size > ci->max_bo)
		expect = -E2BIG;
	want = c.size;
	ret = xioctl(w, w->files[f].fd, DRM_IOCTL_KVFPGA_BO_CREATE, &c);
	if (expect) {
		if (ret != expect)
			worker_fail(w, "BO_CREATE size %#llx flags %#x gave %d, want %d",
			            (unsigned long long)want, c.flags, ret, expect);
		if (ret == 0)
			goto leak; /* forget it as a chaos buffer would be */
		return;
	}
	if (ret == -ENOSPC || ret == -ENOMEM)
		return;
	if (ret) {
		worker_fail(w, "BO_CREATE size %#llx gave %d (%s)", (unsigned long long)want, ret,
		            strerror(-ret));
		return;
	}
	if (c.size != (want + granule - 1) / granule * granule || c.card_addr % granule ||
	    c.card_addr < granule || c.card_addr + c.size > ci->mem_size || c.mmap_offset % PAGE ||
	    c.mmap_offset < (1ULL << 32))
		worker_fail(w, "BO_CREATE of %#llx gave size %#llx card_addr %#llx offset %#llx",
		            (unsigned long long)want, (unsigned long long)c.size,
		            (unsigned long long)c.card_addr, (unsigned long long)c.mmap_offset);
	if (handle_find(w, f, c.handle) >= 0) {
		worker_fail(w, "BO_CREATE returned handle %u, already held by this file", c.handle);
		return;
	}
	o = obj_new(w, w->files[f].card, &c);
	if (o < 0 || handle_add(w, f, c.handle, o) < 0) {
	leak:
		/* No room in the model: close it again. */
		counted(w, vt_gem_close(w->files[f].fd, c.handle));
		if (o >= 0)
			w->objs[o].used = false;
		return;
	}
	/* Zeroed, then tagged at both ends. */
	m = mmap(NULL, c.size, PROT_READ | PROT_WRITE, MAP_SHARED, w->files[f].fd,
	         (off_t)c.mmap_offset);
	counted(w, m == MAP_FAILED ? -1 : 0);
	if (m == MAP_FAILED) {
		if (errno != ENOMEM)
			worker_fail(w, "mapping a new buffer of %#llx failed: %s",
			            (unsigned long long)c.size, strerror(errno));
		return;
	}
	for (int i = 0; i < 16; i++) {
		uint64_t at = i < 2 ? (i ? c.size - 8 : 0) : below(w, c.size / 8) * 8;
		uint64_t v = *(volatile uint64_t *)(m + at);

		if (v) {
			worker_fail(w, "new buffer at card %#llx holds %#llx at +%#llx",
			            (unsigned long long)c.card_addr, (unsigned long long)v,
			            (unsigned long long)at);
			break;
		}
	}
	*(volatile uint64_t *)m = w->objs[o].tag;
	*(volatile uint64_t *)(m + c.size - 8) = w->objs[o].tag;
	counted(w, munmap(m, c.size));
}

static void gem_close_checked(struct worker *w)
{
	int hi = PICK(w, w->handles, MAX_HANDLES), f, expect, ret;
	uint32_t h;

	if (hi < 0 || chance(w, 30)) {
		f = pick_file(w);
		if (f < 0)
			return;
		h = chance(w, 70) ? (uint32_t)below(w, 80) : (uint32_t)rnd(w);
		hi = handle_find(w, f, h);
	} else {
		f = w->handles[hi].file;
		h = w->handles[hi].h;
	}
	expect = hi >= 0 ? 0 : -EINVAL;
	ret = counted(w, vt_gem_close(w->files[f].fd, h));
	if (ret != expect)
		worker_fail(w, "GEM_CLOSE of handle %u gave %d, want %d", h, ret, expect);
	if (hi >= 0 && ret == 0)
		handle_forget(w, hi);
}

static void bo_info_checked(struct worker *w)
{
	int hi = PICK(w, w->handles, MAX_HANDLES), f, expect, ret;
	struct drm_kvfpga_bo_info bi;

	memset(&bi, 0, sizeof(bi));
	if (hi < 0 || chance(w, 25)) {
		f = pick_file(w);
		if (f < 0)
			return;
		bi.handle = chance(w, 70) ? (uint32_t)below(w, 80) : (uint32_t)rnd(w);
		hi = handle_find(w, f, bi.handle);
	} else {
		f = w->handles[hi].file;
		bi.handle = w->handles[hi].h;
	}
	if (chance(w, 10))
		bi.flags = (uint32_t)interesting(w) | 2;
	if (chance(w, 20)) {
		bi.size = rnd(w);
		bi.card_addr = rnd(w);
	}
	expect = bi.flags ? -EINVAL : hi >= 0 ? 0 : -ENOENT;
	ret = xioctl(w, w->files[f].fd, DRM_IOCTL_KVFPGA_BO_INFO, &bi);
	if (ret != expect) {
		worker_fail(w, "BO_INFO handle %u flags %#x gave %d, want %d", bi.handle, bi.flags,
		            ret, expect);
		return;
	}
	if (ret == 0) {
		const struct obj *o = &w->objs[w->handles[hi].obj];

		if (bi.size != o->size || bi.card_addr != o->card_addr ||
		    bi.mmap_offset != o->mmap_offset)
			worker_fail(w, "BO_INFO handle %u: %#llx@%#llx, created as %#llx@%#llx",
			            bi.handle, (unsigned long long)bi.size,
			            (unsigned long long)bi.card_addr, (unsigned long long)o->size,
			            (unsigned long long)o->card_addr);
	}
}

/* Card memory this process keeps alive (handles, mappings, dma-bufs). */
static uint64_t held_bytes(struct worker *w, int card, uint32_t *count)
{
	uint64_t sum = 0;

	*count = 0;
	for (int i = 0; i < MAX_OBJS; i++) {
		if (w->objs[i].used && w->objs[i].card == card) {
			sum += w->objs[i].size;
			(*count)++;
		}
	}
	return sum;
}

static void param_checked(struct worker *w)
{
	int f = pick_file(w), ret, card;
	uint32_t count;
	uint64_t held;

	if (f < 0)
		return;
	card = w->files[f].card;
	held = held_bytes(w, card, &count);
	if (chance(w, 50)) {
		struct drm_kvfpga_get_param gp = { .param = (uint32_t)below(w, 10) };
		int expect;

		if (chance(w, 10))
			gp.param = (uint32_t)interesting(w);
		if (chance(w, 10))
			gp.pad = (uint32_t)interesting(w) | 1;
		gp.value = rnd(w);
		expect = gp.pad || gp.param > KVFPGA_PARAM_BO_COUNT ? -EINVAL : 0;
		ret = xioctl(w, w->files[f].fd, DRM_IOCTL_KVFPGA_GET_PARAM, &gp);
		if (ret != expect)
			worker_fail(w, "GET_PARAM %u pad %u gave %d, want %d", gp.param, gp.pad,
			            ret, expect);
		return;
	} else {
		struct drm_kvfpga_info info;
		int expect;

		memset(&info, 0xa5, sizeof(info));
		info.flags = chance(w, 10) ? (uint32_t)interesting(w) | 4 : 0;
		info.pad = chance(w, 10) ? (uint32_t)interesting(w) | 8 : 0;
		expect = info.flags || info.pad ? -EINVAL : 0;
		ret = xioctl(w, w->files[f].fd, DRM_IOCTL_KVFPGA_GET_INFO, &info);
		if (ret != expect) {
			worker_fail(w, "GET_INFO flags %#x pad %#x gave %d, want %d", info.flags,
			            info.pad, ret, expect);
			return;
		}
		if (ret == 0 &&
		    (info.mem_free > info.mem_total || info.mem_total - info.mem_free < held ||
		     info.bo_count < count || info.mem_size != w->card[card].mem_size))
			worker_fail(
			        w,
			        "GET_INFO: total %#llx free %#llx bo_count %u, but this process "
			        "alone holds %u buffers of %#llx bytes",
			        (unsigned long long)info.mem_total,
			        (unsigned long long)info.mem_free, info.bo_count, count,
			        (unsigned long long)held);
	}
}

static int buf_add(struct worker *w, int fd, int o)
{
	int fl = fcntl(fd, F_GETFL);

	counted(w, fl);
	for (int i = 0; i < MAX_BUFS; i++) {
		if (w->bufs[i].used)
			continue;
		w->bufs[i] = (struct buf){ true, fd, o, fl >= 0 && (fl & O_ACCMODE) == O_RDWR };
		return i;
	}
	return -1;
}

static void export_checked(struct worker *w)
{
	int hi = PICK(w, w->handles, MAX_HANDLES), f, expect, ret, b;
	struct drm_prime_handle ph;
	off_t end;

	if (hi < 0)
		return;
	f = w->handles[hi].file;
	memset(&ph, 0, sizeof(ph));
	ph.handle = w->handles[hi].h;
	ph.flags = (chance(w, 50) ? DRM_CLOEXEC : 0) | (chance(w, 70) ? DRM_RDWR : 0);
	if (chance(w, 10))
		ph.flags |= (uint32_t)interesting(w) & ~(uint32_t)(DRM_CLOEXEC | DRM_RDWR);
	if (chance(w, 10)) {
		ph.handle = (uint32_t)below(w, 100);
		hi = handle_find(w, f, ph.handle);
	}
	ph.fd = (int32_t)rnd(w);
	expect = (ph.flags & ~(uint32_t)(DRM_CLOEXEC | DRM_RDWR)) ? -EINVAL : hi < 0 ? -ENOENT : 0;
	ret = xioctl(w, w->files[f].fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph);
	if (ret == -ENOMEM && expect == 0)
		return; /* an armed fault */
	if (ret != expect) {
		worker_fail(w, "PRIME_HANDLE_TO_FD handle %u flags %#x gave %d, want %d", ph.handle,
		            ph.flags, ret, expect);
		if (ret == 0)
			close(ph.fd);
		return;
	}
	if (ret)
		return;
	end = lseek(ph.fd, 0, SEEK_END);
	counted(w, end);
	if (end < 0 || (uint64_t)end != w->objs[w->handles[hi].obj].size)
		worker_fail(w, "dma-buf of a %#llx buffer seeks to %lld",
		            (unsigned long long)w->objs[w->handles[hi].obj].size, (long long)end);
	b = buf_add(w, ph.fd, w->handles[hi].obj);
	if (b < 0)
		counted(w, close(ph.fd));
}

static void import_checked(struct worker *w)
{
	int b = PICK(w, w->bufs, MAX_BUFS), f = pick_file(w), ret, prev;
	struct drm_prime_handle ph;
	int junk = -1;

	if (f < 0)
		return;
	memset(&ph, 0, sizeof(ph));
	ph.handle = (uint32_t)rnd(w);
	if (b < 0 || chance(w, 15)) {
		/* Not a dma-buf of this card: another file, a pipe end, nothing. */
		switch (below(w, 4)) {
		case 0:
			ph.fd = w->files[f].fd;
			break;
		case 1:
			ph.fd = -1;
			break;
		case 2:
			ph.fd = (int32_t)interesting(w);
			break;
		default:
			junk = open("/dev/null", O_RDONLY | O_CLOEXEC);
			ph.fd = junk;
			break;
		}
		ret = xioctl(w, w->files[f].fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &ph);
		if (junk >= 0)
			close(junk);
		if (ret == 0) {
			/* A number that happened to be one of our dma-bufs is fine. */
			for (int i = 0; i < MAX_BUFS; i++)
				if (w->bufs[i].used && w->bufs[i].fd == ph.fd)
					b = i;
			if (b < 0 || w->bufs[b].fd != ph.fd) {
				worker_fail(w,
				            "PRIME_FD_TO_HANDLE of fd %d (not a dma-buf) succeeded",
				            ph.fd);
				return;
			}
		} else {
			return;
		}
	} else {
		ph.fd = w->bufs[b].fd;
		ph.flags = chance(w, 10) ? (uint32_t)rnd(w) : 0; /* ignored by the core */
		ret = xioctl(w, w->files[f].fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &ph);
	}
	if (w->objs[w->bufs[b].obj].card != w->files[f].card) {
		if (ret == 0)
			worker_fail(w, "a dma-buf of card %d imported into card %d",
			            w->objs[w->bufs[b].obj].card, w->files[f].card);
		if (ret == 0)
			counted(w, vt_gem_close(w->files[f].fd, ph.handle));
		return;
	}
	if (ret == -ENOMEM)
		return;
	if (ret) {
		worker_fail(w, "importing our own dma-buf gave %d (%s)", ret, strerror(-ret));
		return;
	}
	prev = handle_of_obj(w, f, w->bufs[b].obj);
	if (prev >= 0) {
		if (w->handles[prev].h != ph.handle)
			worker_fail(w, "re-import gave handle %u, the file holds it as %u",
			            ph.handle, w->handles[prev].h);
		return;
	}
	if (handle_find(w, f, ph.handle) >= 0) {
		worker_fail(w, "import returned handle %u, held for another buffer", ph.handle);
		return;
	}
	if (handle_add(w, f, ph.handle, w->bufs[b].obj) < 0)
		counted(w, vt_gem_close(w->files[f].fd, ph.handle));
}

static int map_add(struct worker *w, uint8_t *addr, size_t len, int o, uint64_t off, int prot)
{
	for (int i = 0; i < MAX_MAPS; i++) {
		if (w->maps[i].used)
			continue;
		w->maps[i] = (struct map){ true, addr, len, o, off, prot };
		return i;
	}
	return -1;
}

/* Pages [first, first + n) of a buffer of @pages pages, often valid, sometimes not. */
static void pick_range(struct worker *w, uint64_t pages, uint64_t *first, uint64_t *n)
{
	*first = chance(w, 75) ? 0 : chance(w, 70) ? below(w, pages) : pages - 1 + below(w, 3);
	if (chance(w, 80))
		*n = *first < pages ? 1 + below(w, pages - *first) : 1;
	else
		*n = 1 + below(w, pages + 3);
	if (*n > 64 * 1024)
		*n = 1 + below(w, 64 * 1024);
}

/* Our object of @card whose mmap offset is exactly @off, or -1. */
static int obj_at_offset(struct worker *w, int card, uint64_t off)
{
	for (int i = 0; i < MAX_OBJS; i++)
		if (w->objs[i].used && w->objs[i].card == card && w->objs[i].mmap_offset == off)
			return i;
	return -1;
}

/*
 * Through a device file, a mapping works exactly when its offset is the
 * start of a buffer the file holds a handle to, it is no larger than the
 * buffer, and it is shared (the DRM core looks the offset up exactly).
 */
static void mmap_dev_checked(struct worker *w)
{
	int f = pick_file(w), o, t, prot, flags;
	uint64_t first, n, off;
	bool allowed;
	uint8_t *m;

	if (f < 0)
		return;
	o = PICK(w, w->objs, MAX_OBJS);
	prot = chance(w, 70) ? PROT_READ | PROT_WRITE : PROT_READ;
	flags = chance(w, 92) ? MAP_SHARED : MAP_PRIVATE;
	if (o < 0 || chance(w, 10)) {
		off = chance(w, 50) ? ((1ULL << 32) + below(w, 1 << 18) * PAGE) : interesting(w);
		n = 1 + below(w, 16);
	} else {
		pick_range(w, w->objs[o].size / PAGE, &first, &n);
		off = w->objs[o].mmap_offset + first * PAGE;
	}
	t = obj_at_offset(w, w->files[f].card, off);
	allowed = t >= 0 && handle_of_obj(w, f, t) >= 0 && n * PAGE <= w->objs[t].size &&
	          flags == MAP_SHARED;
	m = mmap(NULL, n * PAGE, prot, flags, w->files[f].fd, (off_t)off);
	counted(w, m == MAP_FAILED ? -1 : 0);
	if (m != MAP_FAILED && !allowed) {
		worker_fail(w, "mmap of %llu pages at offset %#llx (%s, flags %#x) succeeded",
		            (unsigned long long)n, (unsigned long long)off,
		            t < 0                        ? "no buffer of ours starts there"
		            : handle_of_obj(w, f, t) < 0 ? "the file holds no handle to it"
		                                         : "larger than the buffer or private",
		            flags);
		counted(w, munmap(m, n * PAGE));
		return;
	}
	if (m == MAP_FAILED) {
		if (allowed && errno != ENOMEM)
			worker_fail(w, "mmap of %llu pages of a held %#llx-byte buffer failed: %s",
			            (unsigned long long)n, (unsigned long long)w->objs[t].size,
			            strerror(errno));
		return;
	}
	if (map_add(w, m, n * PAGE, t, 0, prot) < 0)
		counted(w, munmap(m, n * PAGE));
}

static void mmap_buf_checked(struct worker *w)
{
	int b = PICK(w, w->bufs, MAX_BUFS), prot, flags;
	uint64_t first, n, pages;
	bool allowed;
	uint8_t *m;

	if (b < 0)
		return;
	pages = w->objs[w->bufs[b].obj].size / PAGE;
	pick_range(w, pages, &first, &n);
	if (chance(w, 5))
		first = interesting(w) / PAGE;
	prot = chance(w, 60) ? PROT_READ | PROT_WRITE : PROT_READ;
	flags = chance(w, 92) ? MAP_SHARED : MAP_PRIVATE;
	allowed = first + n <= pages && flags == MAP_SHARED &&
	          (!(prot & PROT_WRITE) || w->bufs[b].writable);
	m = mmap(NULL, n * PAGE, prot, flags, w->bufs[b].fd, (off_t)(first * PAGE));
	counted(w, m == MAP_FAILED ? -1 : 0);
	if (m != MAP_FAILED && !allowed) {
		worker_fail(
		        w,
		        "dma-buf mmap of pages [%llu, +%llu) of %llu (prot %#x flags %#x, fd %s) "
		        "succeeded",
		        (unsigned long long)first, (unsigned long long)n, (unsigned long long)pages,
		        prot, flags, w->bufs[b].writable ? "rw" : "ro");
		counted(w, munmap(m, n * PAGE));
		return;
	}
	if (m == MAP_FAILED) {
		if (allowed && errno != ENOMEM)
			worker_fail(w, "dma-buf mmap of pages [%llu, +%llu) of %llu failed: %s",
			            (unsigned long long)first, (unsigned long long)n,
			            (unsigned long long)pages, strerror(errno));
		return;
	}
	if (map_add(w, m, n * PAGE, w->bufs[b].obj, first * PAGE, prot) < 0)
		counted(w, munmap(m, n * PAGE));
}

static void touch_checked(struct worker *w)
{
	int i = PICK(w, w->maps, MAX_MAPS), sig;

	if (i < 0)
		return;
	sig = touch_map(w, &w->maps[i], !w->child && (w->maps[i].prot & PROT_WRITE));
	if (sig)
		worker_fail(
		        w,
		        "signal %d touching a valid %zu-byte mapping at +%#llx of a %#llx buffer",
		        sig, w->maps[i].len, (unsigned long long)w->maps[i].obj_off,
		        (unsigned long long)w->objs[w->maps[i].obj].size);
}

static void munmap_some(struct worker *w)
{
	int i = PICK(w, w->maps, MAX_MAPS), o;
	struct map *m;
	size_t pages, cut, at;

	if (i < 0)
		return;
	m = &w->maps[i];
	o = m->obj;
	pages = m->len / PAGE;
	switch (pages > 2 ? below(w, 4) : 0) {
	case 0: /* all of it */
		counted(w, munmap(m->addr, m->len));
		m->used = false;
		obj_maybe_drop(w, o);
		break;
	case 1: /* the head */
		cut = 1 + below(w, pages - 1);
		if (counted(w, munmap(m->addr, cut * PAGE)) == 0) {
			m->addr += cut * PAGE;
			m->len -= cut * PAGE;
			m->obj_off += cut * PAGE;
		}
		break;
	case 2: /* the tail */
		cut = 1 + below(w, pages - 1);
		if (counted(w, munmap(m->addr + m->len - cut * PAGE, cut * PAGE)) == 0)
			m->len -= cut * PAGE;
		break;
	default: /* a hole: the mapping splits in two */
		at = 1 + below(w, pages - 2);
		if (counted(w, munmap(m->addr + at * PAGE, PAGE)) == 0) {
			struct map tail = *m;

			m->len = at * PAGE;
			tail.addr += (at + 1) * PAGE;
			tail.len -= (at + 1) * PAGE;
			tail.obj_off += (at + 1) * PAGE;
			if (map_add(w, tail.addr, tail.len, tail.obj, tail.obj_off, tail.prot) < 0)
				counted(w, munmap(tail.addr, tail.len));
		}
		break;
	}
}

/* mremap (shrink, grow, move), mprotect and madvise of a mapping. */
static void remap_some(struct worker *w)
{
	static const int advice[] = { MADV_NORMAL,   MADV_RANDOM,   MADV_SEQUENTIAL, MADV_WILLNEED,
		                      MADV_DONTNEED, MADV_DONTDUMP, MADV_DODUMP,     MADV_COLD };
	int i = PICK(w, w->maps, MAX_MAPS);
	struct map *m;
	void *p;

	if (i < 0)
		return;
	m = &w->maps[i];
	switch (below(w, 5)) {
	case 0: /* shrink in place */
		if (m->len > PAGE) {
			size_t len = (1 + below(w, m->len / PAGE - 1)) * PAGE;

			p = mremap(m->addr, m->len, len, 0);
			counted(w, p == MAP_FAILED ? -1 : 0);
			if (p == MAP_FAILED)
				worker_fail(w, "shrinking a mapping with mremap failed: %s",
				            strerror(errno));
			else
				m->len = len;
		}
		break;
	case 1: /* grow: VM_DONTEXPAND refuses */
	{
		size_t len = m->len + PAGE * (1 + below(w, 4));

		p = mremap(m->addr, m->len, len, MREMAP_MAYMOVE);
		counted(w, p == MAP_FAILED ? -1 : 0);
		if (p != MAP_FAILED) {
			worker_fail(w, "mremap grew a buffer mapping");
			m->addr = p; /* the model follows, so the unmap covers it */
			m->len = len;
		}
		break;
	}
	case 2: /* move */
		p = mmap(NULL, m->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		counted(w, p == MAP_FAILED ? -1 : 0);
		if (p == MAP_FAILED)
			break;
		{
			void *moved =
			        mremap(m->addr, m->len, m->len, MREMAP_MAYMOVE | MREMAP_FIXED, p);

			counted(w, moved == MAP_FAILED ? -1 : 0);
			if (moved != MAP_FAILED)
				m->addr = moved;
			else
				munmap(p, m->len);
			break;
		}
	case 3: { /* mprotect between read-only and read-write */
		int prot = m->prot & PROT_WRITE ? PROT_READ : PROT_READ | PROT_WRITE;

		if (counted(w, mprotect(m->addr, m->len, prot)) == 0)
			m->prot = prot;
		break;
	}
	default:
		counted(w, madvise(m->addr, m->len, advice[below(w, 8)]));
		break;
	}
}

/* Map a buffer afresh (through a file holding it or a dma-buf) and read its tags. */
static void verify_tags(struct worker *w)
{
	int o = PICK(w, w->objs, MAX_OBJS), fd = -1;
	struct map m;
	uint8_t *p;

	if (o < 0)
		return;
	for (int i = 0; i < MAX_HANDLES && fd < 0; i++)
		if (w->handles[i].used && w->handles[i].obj == o)
			fd = w->files[w->handles[i].file].fd;
	for (int i = 0; i < MAX_BUFS && fd < 0; i++)
		if (w->bufs[i].used && w->bufs[i].obj == o)
			fd = -2 - i;
	if (fd == -1)
		return;
	if (fd >= 0)
		p = mmap(NULL, w->objs[o].size, PROT_READ, MAP_SHARED, fd,
		         (off_t)w->objs[o].mmap_offset);
	else
		p = mmap(NULL, w->objs[o].size, PROT_READ, MAP_SHARED, w->bufs[-2 - fd].fd, 0);
	counted(w, p == MAP_FAILED ? -1 : 0);
	if (p == MAP_FAILED) {
		if (errno != ENOMEM)
			worker_fail(w, "mapping a held buffer of %#llx to verify it failed: %s",
			            (unsigned long long)w->objs[o].size, strerror(errno));
		return;
	}
	m = (struct map){ true, p, w->objs[o].size, o, 0, PROT_READ };
	if (touch_map(w, &m, false))
		worker_fail(w, "fault reading a fresh mapping of a held buffer");
	counted(w, munmap(p, w->objs[o].size));
}

/* Random words for a random ioctl: boundaries, junk, and pointers into @target. */
static void fill_args(struct worker *w, size_t len)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v;

		switch (below(w, 8)) {
		case 0:
			v = (uint64_t)(uintptr_t)(w->target + below(w, 60000));
			break;
		case 1:
			v = 0;
			break;
		default:
			v = interesting(w);
			break;
		}
		memcpy(w->scratch + i, &v, 8);
	}
}

static void raw_ioctl(struct worker *w)
{
	int card = (int)below(w, N_CARDS), fd = w->chaos[card], ret;
	unsigned int nr, dir, size;
	unsigned long req;

	if (fd < 0)
		return;
	switch (below(w, 10)) {
	case 0:
	case 1:
	case 2:
	case 3: /* the driver's range */
		nr = DRM_COMMAND_BASE + (unsigned int)below(w, chance(w, 80) ? 8 : 0x60);
		break;
	case 4:
	case 5:
	case 6: /* the core's */
		nr = chance(w, 70) ? (unsigned int)below(w, 0x40)
		                   : 0xa0 + (unsigned int)below(w, 0x40);
		break;
	default:
		nr = (unsigned int)below(w, 256);
		break;
	}
	dir = (unsigned int)below(w, 4);
	size = chance(w, 80) ? (unsigned int)below(w, 128) : (unsigned int)below(w, 4096);
	req = _IOC(dir, chance(w, 95) ? DRM_IOCTL_BASE : (unsigned int)below(w, 256), nr, size);
	/* Now and then a well-formed driver call with random contents. */
	if (chance(w, 15)) {
		static const unsigned long valid[] = { DRM_IOCTL_KVFPGA_GET_PARAM,
			                               DRM_IOCTL_KVFPGA_GET_INFO,
			                               DRM_IOCTL_KVFPGA_BO_CREATE,
			                               DRM_IOCTL_KVFPGA_BO_INFO,
			                               DRM_IOCTL_GEM_CLOSE,
			                               DRM_IOCTL_PRIME_HANDLE_TO_FD,
			                               DRM_IOCTL_PRIME_FD_TO_HANDLE,
			                               DRM_IOCTL_VERSION,
			                               DRM_IOCTL_GET_CAP,
			                               DRM_IOCTL_SET_CLIENT_CAP };

		req = valid[below(w, sizeof(valid) / sizeof(valid[0]))];
		size = _IOC_SIZE(req);
	}
	fill_args(w, 4096);
	if (_IOC_NR(req) == _IOC_NR(DRM_IOCTL_PRIME_HANDLE_TO_FD)) {
		/* A dma-buf fd it makes must come back to be closed, or they pile up. */
		req = _IOC(_IOC_DIR(req) | _IOC_READ, _IOC_TYPE(req), _IOC_NR(req),
		           _IOC_SIZE(req) < sizeof(struct drm_prime_handle)
		                   ? sizeof(struct drm_prime_handle)
		                   : _IOC_SIZE(req));
		((struct drm_prime_handle *)(void *)w->scratch)->fd = -1; /* output only */
	}
	if (req == DRM_IOCTL_KVFPGA_BO_CREATE && chance(w, 70)) {
		/* Mostly sizes that fit, so the chaos file holds buffers too. */
		struct drm_kvfpga_bo_create *c = (void *)w->scratch;

		c->size = 1 + below(w, 1 << 20);
		c->flags = 0;
	}
	ret = xioctl(w, fd, req, w->scratch);
	if (ret == 0 && _IOC_NR(req) == _IOC_NR(DRM_IOCTL_PRIME_HANDLE_TO_FD)) {
		const struct drm_prime_handle *ph = (const void *)w->scratch;

		if (ph->fd >= 0)
			close(ph->fd); /* a dma-buf of a chaos buffer: not ours to keep */
	}
	/* The chaos file may fill up: start afresh now and then. */
	if (chance(w, 1)) {
		int nfd = open_card(w, card);

		if (nfd >= 0) {
			counted(w, close(fd));
			w->chaos[card] = nfd;
		}
	}
}

static void dmabuf_ioctl(struct worker *w)
{
	int b = PICK(w, w->bufs, MAX_BUFS), ret;

	if (b < 0)
		return;
	switch (below(w, 4)) {
	case 0: {
		struct dma_buf_sync s = { .flags = below(w, 8) };
		bool valid;

		if (chance(w, 10))
			s.flags = interesting(w);
		valid = !(s.flags & ~DMA_BUF_SYNC_VALID_FLAGS_MASK) && (s.flags & DMA_BUF_SYNC_RW);
		ret = xioctl(w, w->bufs[b].fd, DMA_BUF_IOCTL_SYNC, &s);
		if (valid && ret)
			worker_fail(w, "DMA_BUF_IOCTL_SYNC flags %#llx gave %d",
			            (unsigned long long)s.flags, ret);
		if (!valid && ret == 0)
			worker_fail(w, "DMA_BUF_IOCTL_SYNC accepted flags %#llx",
			            (unsigned long long)s.flags);
		break;
	}
	case 1: {
		char name[48];
		size_t len = below(w, sizeof(name));

		for (size_t i = 0; i < len; i++)
			name[i] = (char)(' ' + below(w, 95));
		name[len] = '\0';
		xioctl(w, w->bufs[b].fd, DMA_BUF_SET_NAME_B, name);
		break;
	}
	case 2: {
		struct dma_buf_export_sync_file e = { .flags = (uint32_t)below(w, 4), .fd = -1 };

		if (xioctl(w, w->bufs[b].fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e) == 0 &&
		    e.fd >= 0) {
			struct dma_buf_import_sync_file im = { .flags = (uint32_t)below(w, 4),
				                               .fd = e.fd };
			int other = PICK(w, w->bufs, MAX_BUFS);

			xioctl(w, w->bufs[other].fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &im);
			counted(w, close(e.fd));
		}
		break;
	}
	default: {
		unsigned long req = _IOC((unsigned int)below(w, 4), DMA_BUF_BASE,
		                         (unsigned int)below(w, 8), (unsigned int)below(w, 64));

		fill_args(w, 64);
		if (_IOC_NR(req) != 2) /* an exported sync_file fd would leak */
			xioctl(w, w->bufs[b].fd, req, w->scratch);
		break;
	}
	}
}

/* fdinfo of a tracked file counts exactly its handles; a dma-buf's shows its size. */
static void fdinfo_checked(struct worker *w)
{
	char path[64], line[256];
	bool dmabuf = chance(w, 30);
	int f = -1, b = -1, fd;
	uint64_t want = 0, got = UINT64_MAX;
	FILE *fp;

	if (dmabuf) {
		b = PICK(w, w->bufs, MAX_BUFS);
		if (b < 0)
			return;
		fd = w->bufs[b].fd;
		want = w->objs[w->bufs[b].obj].size;
	} else {
		f = pick_file(w);
		if (f < 0)
			return;
		fd = w->files[f].fd;
		for (int i = 0; i < MAX_HANDLES; i++)
			if (w->handles[i].used && w->handles[i].file == f)
				want += w->objs[w->handles[i].obj].size >> 10;
	}
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	fp = fopen(path, "r");
	counted(w, fp ? 0 : -1);
	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		if (dmabuf && !strncmp(line, "size:", 5))
			got = strtoull(line + 5, NULL, 10);
		if (!dmabuf && !strncmp(line, "drm-total-card:", 15))
			got = strtoull(line + 15, NULL, 10);
	}
	fclose(fp);
	if (got != want)
		worker_fail(w, "fdinfo of %s fd says %llu%s, the model holds %llu",
		            dmabuf ? "a dma-buf" : "a device", (unsigned long long)got,
		            dmabuf ? " bytes" : " KiB", (unsigned long long)want);
}

static void debugfs_read(struct worker *w)
{
	static const char *const names[] = { "bos", "mm", "name", "clients", "faults_injected" };
	char path[PATH_MAX + 32], buf[4096];
	int card = (int)below(w, N_CARDS), fd;

	if (!w->debugfs[card][0])
		return;
	snprintf(path, sizeof(path), "%s/%s", w->debugfs[card], names[below(w, 5)]);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	counted(w, fd);
	if (fd < 0)
		return;
	while (counted(w, read(fd, buf, sizeof(buf))) > 0)
		;
	close(fd);
}

static void arm_fault(struct worker *w)
{
	if (!w->faults || w->id != 0 || w->child || !w->debugfs[CARD_MAIN][0])
		return;
	if (vt_debugfs_write_u64(w->debugfs[below(w, N_CARDS) ? CARD_SECOND : CARD_MAIN],
	                         "fail_nth", 1 + below(w, 24)) == 0)
		__atomic_fetch_add(&w->st->faults_armed, 1, __ATOMIC_RELAXED);
	counted(w, 0);
}

/* Drop everything tracked on file @f (its handles die with it). */
static void file_close(struct worker *w, int f)
{
	counted(w, close(w->files[f].fd));
	w->files[f].fd = -1;
	for (int i = 0; i < MAX_HANDLES; i++)
		if (w->handles[i].used && w->handles[i].file == f)
			handle_forget(w, i);
}

static void close_some(struct worker *w)
{
	int b, f, card;

	switch (below(w, 3)) {
	case 0:
		b = PICK(w, w->bufs, MAX_BUFS);
		if (b >= 0) {
			counted(w, close(w->bufs[b].fd));
			w->bufs[b].used = false;
			obj_maybe_drop(w, w->bufs[b].obj);
		}
		break;
	case 1:
		f = pick_file(w);
		if (f < 0)
			break;
		card = w->files[f].card;
		/* An unprivileged worker reopens from its pool: keep the file if it is empty. */
		if (!w->root && !w->child && !w->pool_n[card])
			break;
		file_close(w, f);
		if (!w->child) {
			int fd = open_card(w, card);

			if (fd >= 0)
				w->files[f] = (struct file_slot){ fd, card };
		}
		break;
	default:
		/* A second file on a card (if there is room). */
		for (f = 0; f < MAX_FILES; f++) {
			if (w->files[f].fd < 0) {
				int fd;

				card = (int)below(w, N_CARDS);
				fd = open_card(w, card);
				if (fd >= 0)
					w->files[f] = (struct file_slot){ fd, card };
				break;
			}
		}
		break;
	}
}

/* Drop a handle, a dma-buf fd or a mapping. */
static void release_some(struct worker *w)
{
	int i;

	switch (below(w, 3)) {
	case 0:
		i = PICK(w, w->handles, MAX_HANDLES);
		if (i >= 0) {
			int ret = counted(
			        w, vt_gem_close(w->files[w->handles[i].file].fd, w->handles[i].h));

			if (ret)
				worker_fail(w, "GEM_CLOSE of held handle %u gave %d",
				            w->handles[i].h, ret);
			handle_forget(w, i);
		}
		break;
	case 1:
		i = PICK(w, w->bufs, MAX_BUFS);
		if (i >= 0) {
			counted(w, close(w->bufs[i].fd));
			w->bufs[i].used = false;
			obj_maybe_drop(w, w->bufs[i].obj);
		}
		break;
	default:
		i = PICK(w, w->maps, MAX_MAPS);
		if (i >= 0) {
			counted(w, munmap(w->maps[i].addr, w->maps[i].len));
			w->maps[i].used = false;
			obj_maybe_drop(w, w->maps[i].obj);
		}
		break;
	}
}

/* ---- children: inherit everything, touch without writing, never change the parent's files ---- */

static void run_ops(struct worker *w, uint64_t n);

static void child_main(struct worker *w)
{
	int card = (int)below(w, N_CARDS), own;

	w->child = true;
	w->rng ^= 0xc01dULL * (uint64_t)getpid();
	/* The files are shared with the parent: read from them, then drop them. */
	for (int f = 0; f < MAX_FILES; f++) {
		if (w->files[f].fd < 0)
			continue;
		if (chance(w, 50)) {
			struct drm_kvfpga_get_param gp = { .param = KVFPGA_PARAM_BO_COUNT };

			xioctl(w, w->files[f].fd, DRM_IOCTL_KVFPGA_GET_PARAM, &gp);
		}
		close(w->files[f].fd);
		w->files[f].fd = -1;
	}
	memset(w->handles, 0, sizeof(w->handles));
	for (int o = 0; o < MAX_OBJS; o++)
		obj_maybe_drop(w, o);
	/* Its mappings and dma-bufs stay; a root child also gets a file of its own. */
	own = open_card(w, card);
	if (own >= 0)
		w->files[0] = (struct file_slot){ own, card };
	run_ops(w, 1 + below(w, 200));
	_exit(0);
}

static void reap_kids(struct worker *w, bool all)
{
	for (int i = 0; i < MAX_KIDS; i++) {
		int status;

		if (w->kids[i] <= 0)
			continue;
		if (all)
			kill(w->kids[i], SIGKILL);
		if (waitpid(w->kids[i], &status, all ? 0 : WNOHANG) == w->kids[i]) {
			if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
				worker_fail(w, "a forked child died of signal %d",
				            WTERMSIG(status));
			w->kids[i] = 0;
		}
	}
}

static void fork_some(struct worker *w)
{
	int slot = -1;
	pid_t pid;

	reap_kids(w, false);
	for (int i = 0; i < MAX_KIDS; i++)
		if (w->kids[i] <= 0)
			slot = i;
	if (slot < 0 || w->child)
		return;
	pid = fork();
	if (pid == 0)
		child_main(w);
	counted(w, pid);
	if (pid < 0)
		return;
	__atomic_fetch_add(&w->st->forks, 1, __ATOMIC_RELAXED);
	w->kids[slot] = pid;
	switch (below(w, 3)) {
	case 0: { /* wait for it */
		int status;

		if (waitpid(pid, &status, 0) == pid) {
			w->kids[slot] = 0;
			if (WIFSIGNALED(status))
				worker_fail(w, "a forked child died of signal %d",
				            WTERMSIG(status));
			else if (WEXITSTATUS(status))
				worker_fail(w, "a forked child exited %d", WEXITSTATUS(status));
		}
		break;
	}
	case 1: { /* kill it mid-way */
		struct timespec nap = { 0, (long)below(w, 3000) * 1000 };

		nanosleep(&nap, NULL);
		kill(pid, SIGKILL);
		__atomic_fetch_add(&w->st->kills, 1, __ATOMIC_RELAXED);
		break;
	}
	default: /* let it run alongside */
		break;
	}
}

static bool out_of_budget(struct worker *w)
{
	struct timespec now;

	if (w->st->calls >= w->budget)
		return true;
	if (w->op_index % 32)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > w->end.tv_sec ||
	       (now.tv_sec == w->end.tv_sec && now.tv_nsec >= w->end.tv_nsec);
}

static enum op pick_op(struct worker *w)
{
	static unsigned int total;
	unsigned int r;

	if (!total)
		for (int i = 0; i < N_OPS; i++)
			total += op_weight[i];
	r = (unsigned int)below(w, total);
	for (int i = 0; i < N_OPS; i++) {
		if (r < op_weight[i])
			return (enum op)i;
		r -= op_weight[i];
	}
	return OP_PARAM;
}

static void run_ops(struct worker *w, uint64_t n)
{
	for (uint64_t k = 0; k < n && !out_of_budget(w); k++) {
		enum op op = pick_op(w);

		w->op_index++;
		__atomic_fetch_add(&w->st->ops[op], 1, __ATOMIC_RELAXED);
		switch (op) {
		case OP_CREATE:
			create_checked(w);
			break;
		case OP_GEM_CLOSE:
			gem_close_checked(w);
			break;
		case OP_BO_INFO:
			bo_info_checked(w);
			break;
		case OP_PARAM:
			param_checked(w);
			break;
		case OP_EXPORT:
			export_checked(w);
			break;
		case OP_IMPORT:
			import_checked(w);
			break;
		case OP_MMAP_DEV:
			mmap_dev_checked(w);
			break;
		case OP_MMAP_BUF:
			mmap_buf_checked(w);
			break;
		case OP_TOUCH:
			touch_checked(w);
			break;
		case OP_MUNMAP:
			munmap_some(w);
			break;
		case OP_REMAP:
			remap_some(w);
			break;
		case OP_VERIFY:
			verify_tags(w);
			break;
		case OP_RAW_IOCTL:
			if (!w->child)
				raw_ioctl(w);
			break;
		case OP_DMABUF_IOCTL:
			dmabuf_ioctl(w);
			break;
		case OP_FDINFO:
			fdinfo_checked(w);
			break;
		case OP_DEBUGFS:
			debugfs_read(w);
			break;
		case OP_FORK:
			fork_some(w);
			break;
		case OP_CLOSE_FD:
			close_some(w);
			break;
		case OP_ARM_FAULT:
			arm_fault(w);
			break;
		case N_OPS:
			break;
		}
	}
}

static int worker_main(struct worker *w)
{
	int n = 0;

	install_fault_handler();
	w->scratch = malloc(4096);
	w->target = malloc(65536);
	if (!w->scratch || !w->target)
		return 1;
	for (int c = 0; c < N_CARDS; c++) {
		int fd = vt_open_slot(card_slot[c]);

		w->chaos[c] = -1;
		if (fd < 0) {
			worker_fail(w, "cannot open card %s: %s", card_slot[c], strerror(-fd));
			return 1;
		}
		w->card[c].granule = vt_param(fd, KVFPGA_PARAM_GRANULE);
		w->card[c].max_bo = vt_param(fd, KVFPGA_PARAM_MAX_BO_SIZE);
		w->card[c].mem_size = vt_param(fd, KVFPGA_PARAM_MEM_SIZE);
		if (w->root && vt_debugfs_dir(fd, card_slot[c], w->debugfs[c], PATH_MAX))
			w->debugfs[c][0] = '\0';
		w->files[n++] = (struct file_slot){ fd, c };
		w->chaos[c] = vt_open_slot(card_slot[c]);
	}
	w->files[n++] = (struct file_slot){ vt_open_slot(VT_SLOT_MAIN), CARD_MAIN };
	for (int f = n; f < MAX_FILES; f++)
		w->files[f].fd = -1;
	if (!w->root) {
		/* Files for later reopens, then an ordinary user's rights. */
		for (int c = 0; c < N_CARDS; c++)
			for (int i = 0; i < POOL_FDS / N_CARDS; i++) {
				int fd = vt_open_slot(card_slot[c]);

				if (fd >= 0)
					w->pool[c][w->pool_n[c]++] = fd;
			}
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
			worker_fail(w, "cannot drop privileges: %s", strerror(errno));
			return 1;
		}
		prctl(PR_SET_DUMPABLE, 1); /* keep /proc/self/fdinfo readable */
	}
	run_ops(w, UINT64_MAX);
	reap_kids(w, true);
	/* Let go of everything, mappings last (they outlive their handles). */
	for (int i = 0; i < MAX_BUFS; i++)
		if (w->bufs[i].used)
			close(w->bufs[i].fd);
	for (int f = 0; f < MAX_FILES; f++)
		if (w->files[f].fd >= 0)
			close(w->files[f].fd);
	for (int i = 0; i < MAX_MAPS; i++)
		if (w->maps[i].used)
			munmap(w->maps[i].addr, w->maps[i].len);
	w->st->done = 1;
	return 0;
}

/* ---- regressions: what the fuzzer found, checked every run ---- */

/* The core ioctls a render node allows a driver without syncobjs. */
static bool core_ioctl_allowed(unsigned int nr)
{
	return nr == _IOC_NR(DRM_IOCTL_VERSION) || nr == _IOC_NR(DRM_IOCTL_GET_CAP) ||
	       nr == _IOC_NR(DRM_IOCTL_GEM_CLOSE) || nr == _IOC_NR(DRM_IOCTL_PRIME_HANDLE_TO_FD) ||
	       nr == _IOC_NR(DRM_IOCTL_PRIME_FD_TO_HANDLE);
}

/*
 * Every other core ioctl, with zeroed arguments, must fail: on an accel
 * node with -EACCES (on 6.12, GET_UNIQUE and GET_MAGIC used to oops there).
 * Returns the number of wrong answers, printing the first.
 */
static int core_ioctls_refused(int fd, bool accel)
{
	uint8_t args[256];
	int wrong = 0;

	for (unsigned int nr = 0; nr < 0xd0; nr++) {
		int ret;

		if ((nr >= 0x40 && nr < 0xa0) || core_ioctl_allowed(nr))
			continue;
		memset(args, 0, sizeof(args));
		ret = ioctl(fd, _IOC(_IOC_READ | _IOC_WRITE, DRM_IOCTL_BASE, nr, 64), args);
		if (ret == 0 || (accel && errno != EACCES)) {
			if (!wrong++)
				printf("fuzz: core ioctl %#x gave %d (%s)\n", nr, ret,
				       ret ? strerror(errno) : "success");
		}
	}
	return wrong;
}

static void test_core_ioctls(void)
{
	struct vt_case c;
	char node[PATH_MAX];
	bool accel;

	vt_begin(&c, "fuzz-regression-core-ioctls-refused");
	if (vt_find_node(VT_SLOT_MAIN, node, sizeof(node))) {
		vt_fail(&c, "no node");
		vt_end(&c);
		return;
	}
	accel = !strncmp(node, "/dev/accel/", 11);
	for (int unprivileged = 0; unprivileged < 2; unprivileged++) {
		pid_t pid = fork();
		int status = 0;

		if (pid == 0) {
			int fd = vt_open_slot(VT_SLOT_MAIN);

			if (fd < 0)
				_exit(100);
			if (unprivileged && (setgroups(0, NULL) || setgid(65534) || setuid(65534)))
				_exit(101);
			_exit(core_ioctls_refused(fd, accel) ? 1 : 0);
		}
		VT_CHECK(&c,
		         pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		                 WEXITSTATUS(status) == 0,
		         "a core ioctl outside the render set was not refused (%s, %s; status %#x)",
		         node, unprivileged ? "unprivileged" : "root", status);
	}
	vt_end(&c);
}

/* A read-only file (a dma-buf exported without DRM_RDWR, a node opened O_RDONLY) maps read-only. */
static void test_readonly_mappings(void)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo;
	struct drm_kvfpga_bo_info bi;
	char node[PATH_MAX];
	int fd = vt_open_slot(VT_SLOT_MAIN), rofd = -1, buf = -1;
	uint32_t handle;
	uint8_t *m, *r;

	vt_begin(&c, "fuzz-regression-readonly-mappings");
	if (fd < 0 || vt_bo_create(fd, 64 * PAGE, 0, &bo) ||
	    !(m = vt_map(fd, bo.mmap_offset, bo.size))) {
		vt_fail(&c, "create/map failed");
		vt_end(&c);
		if (fd >= 0)
			close(fd);
		return;
	}
	vm_pattern_fill(m, bo.size, 0x40);
	VT_CHECK(&c, drmPrimeHandleToFD(fd, bo.handle, DRM_CLOEXEC, &buf) == 0, "export failed");
	r = mmap(NULL, bo.size, PROT_READ, MAP_SHARED, buf, 0);
	VT_CHECK(&c, r != MAP_FAILED, "read-only dma-buf: shared read-only mmap failed: %s",
	         strerror(errno));
	if (r != MAP_FAILED) {
		VT_CHECK(&c, vm_pattern_check(r, bo.size, 0x40) == bo.size, "wrong bytes");
		munmap(r, bo.size);
	}
	r = mmap(NULL, bo.size, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
	VT_CHECK(&c, r == MAP_FAILED && errno == EACCES, "read-only dma-buf mapped writable");
	if (r != MAP_FAILED)
		munmap(r, bo.size);
	r = mmap(NULL, bo.size, PROT_READ, MAP_PRIVATE, buf, 0);
	VT_CHECK(&c, r == MAP_FAILED && errno == EINVAL, "private mapping of a dma-buf allowed");
	if (r != MAP_FAILED)
		munmap(r, bo.size);

	if (vt_find_node(VT_SLOT_MAIN, node, sizeof(node)) == 0)
		rofd = open(node, O_RDONLY | O_CLOEXEC);
	memset(&bi, 0, sizeof(bi));
	VT_CHECK(&c, rofd >= 0 && buf >= 0 && drmPrimeFDToHandle(rofd, buf, &handle) == 0,
	         "import into a read-only open failed");
	bi.handle = handle;
	if (rofd >= 0 && vt_ioctl(rofd, DRM_IOCTL_KVFPGA_BO_INFO, &bi) == 0) {
		r = mmap(NULL, bo.size, PROT_READ, MAP_SHARED, rofd, (off_t)bi.mmap_offset);
		VT_CHECK(&c, r != MAP_FAILED && vm_pattern_check(r, bo.size, 0x40) == bo.size,
		         "read-only node: shared read-only mmap failed: %s", strerror(errno));
		if (r != MAP_FAILED)
			munmap(r, bo.size);
		r = mmap(NULL, bo.size, PROT_READ | PROT_WRITE, MAP_SHARED, rofd,
		         (off_t)bi.mmap_offset);
		VT_CHECK(&c, r == MAP_FAILED && errno == EACCES, "read-only node mapped writable");
		if (r != MAP_FAILED)
			munmap(r, bo.size);
	} else {
		vt_fail(&c, "BO_INFO on the read-only open failed");
	}
	if (rofd >= 0)
		close(rofd);
	if (buf >= 0)
		close(buf);
	munmap(m, bo.size);
	vt_gem_close(fd, bo.handle);
	close(fd);
	vt_end(&c);
}

/* ---- the parent ---- */

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

static bool card_idle(int fd)
{
	for (int i = 0; i < 50; i++) {
		struct timespec nap = { 0, 100 * 1000 * 1000 };

		if (vt_param(fd, KVFPGA_PARAM_MEM_FREE) == vt_param(fd, KVFPGA_PARAM_MEM_TOTAL) &&
		    vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 0)
			return true;
		nanosleep(&nap, NULL);
	}
	return false;
}

static void functional_check(int fd)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo;
	char why[256] = "";
	uint8_t *p;

	vt_begin(&c, "fuzz-functional-after");
	if (vt_bo_create(fd, 3 * MiB, 0, &bo) || !(p = vt_map(fd, bo.mmap_offset, bo.size))) {
		vt_fail(&c, "create/map after the fuzz run failed");
		vt_end(&c);
		return;
	}
	for (size_t i = 0; i < bo.size; i += PAGE)
		VT_CHECK(&c, p[i] == 0, "new buffer not zero at %zu", i);
	vm_pattern_fill(p, bo.size, 0xf022);
	VT_CHECK(&c, vm_pattern_check(p, bo.size, 0xf022) == bo.size, "read back differs");
	msync(p, bo.size, MS_SYNC);
	VT_CHECK(&c,
	         vt_host(VT_SLOT_MAIN, "verify", bo.card_addr, bo.size, 0xf022, why, sizeof(why)) ==
	                 0,
	         "host does not see the bytes at card_addr %#llx: %s",
	         (unsigned long long)bo.card_addr, why);
	VT_CHECK(&c,
	         vt_host(VT_SLOT_MAIN, "plant", bo.card_addr, bo.size, 0xf023, why, sizeof(why)) ==
	                         0 &&
	                 vm_pattern_check(p, bo.size, 0xf023) == bo.size,
	         "bytes the host planted are not seen: %s", why);
	munmap(p, bo.size);
	VT_CHECK(&c, vt_gem_close(fd, bo.handle) == 0, "GEM_CLOSE failed");
	VT_CHECK(&c, card_idle(fd), "card not idle after the functional check");
	vt_end(&c);
}

int main(void)
{
	uint64_t seconds = env_u64("KVFPGA_FUZZ_SECONDS", 40);
	uint64_t max_calls = env_u64("KVFPGA_FUZZ_CALLS", 20000000);
	int nworkers = (int)env_u64("KVFPGA_FUZZ_WORKERS", 4);
	bool faults = env_u64("KVFPGA_FUZZ_FAULTS", 1) != 0;
	struct timespec start, end, now;
	struct wstats *st;
	struct vt_case c;
	pid_t pids[64];
	int fds[N_CARDS];
	char dir[PATH_MAX] = "";
	uint64_t calls = 0, ops[N_OPS] = { 0 }, forks = 0, kills = 0, armed = 0, ok = 0;
	uint64_t inj_before = 0, inj_after = 0;
	int crashed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	clock_gettime(CLOCK_REALTIME, &now);
	g_seed = env_u64("KVFPGA_FUZZ_SEED", ((uint64_t)now.tv_sec << 20) ^ (uint64_t)now.tv_nsec ^
	                                             ((uint64_t)getpid() << 40));
	if (nworkers < 1 || nworkers > 64)
		nworkers = 4;
	printf("fuzz: seed %llu (KVFPGA_FUZZ_SEED=%llu replays), %d workers, %llu s, at most %llu "
	       "calls\n",
	       (unsigned long long)g_seed, (unsigned long long)g_seed, nworkers,
	       (unsigned long long)seconds, (unsigned long long)max_calls);
	for (int cd = 0; cd < N_CARDS; cd++) {
		fds[cd] = vt_open_slot(card_slot[cd]);
		if (fds[cd] < 0) {
			printf("FAIL t_fuzz-open: no kvfpga node for %s: %s\n", card_slot[cd],
			       strerror(-fds[cd]));
			return 1;
		}
	}
	if (vt_debugfs_dir(fds[CARD_MAIN], VT_SLOT_MAIN, dir, sizeof(dir)) == 0)
		vt_debugfs_read_u64(dir, "faults_injected", &inj_before);
	test_core_ioctls();
	test_readonly_mappings();

	st = mmap(NULL, sizeof(*st) * (size_t)nworkers, PROT_READ | PROT_WRITE,
	          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED) {
		printf("FAIL t_fuzz-setup: %s\n", strerror(errno));
		return 1;
	}
	memset(st, 0, sizeof(*st) * (size_t)nworkers);
	clock_gettime(CLOCK_MONOTONIC, &start);
	end = start;
	end.tv_sec += (time_t)seconds;
	for (int i = 0; i < nworkers; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			static struct worker w;

			for (int cd = 0; cd < N_CARDS; cd++)
				close(fds[cd]);
			w.id = i;
			w.root = i % 2 == 0;
			w.faults = faults;
			w.rng = g_seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1));
			w.budget = max_calls / (uint64_t)nworkers;
			w.end = end;
			w.st = &st[i];
			_exit(worker_main(&w));
		}
	}
	/* Wait; a worker that outlives its deadline by a minute is stuck. */
	for (int i = 0; i < nworkers; i++) {
		int status;

		for (;;) {
			struct timespec nap = { 0, 50 * 1000 * 1000 };
			pid_t r = waitpid(pids[i], &status, WNOHANG);

			if (r == pids[i])
				break;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > end.tv_sec + 60) {
				printf("fuzz: worker %d stuck, killing it\n", i);
				kill(pids[i], SIGKILL);
				waitpid(pids[i], &status, 0);
				crashed++;
				break;
			}
			nanosleep(&nap, NULL);
		}
		if (WIFSIGNALED(status) || WEXITSTATUS(status) || !st[i].done) {
			printf("fuzz: worker %d ended with status %#x\n", i, status);
			crashed++;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (dir[0]) {
		vt_debugfs_write_u64(dir, "fail_nth", 0);
		vt_debugfs_read_u64(dir, "faults_injected", &inj_after);
	}
	{
		char dir2[PATH_MAX];

		if (vt_debugfs_dir(fds[CARD_SECOND], VT_SLOT_SECOND, dir2, sizeof(dir2)) == 0) {
			uint64_t v = 0;

			vt_debugfs_write_u64(dir2, "fail_nth", 0);
			vt_debugfs_read_u64(dir2, "faults_injected", &v);
			inj_after += v;
		}
	}

	for (int i = 0; i < nworkers; i++) {
		calls += st[i].calls;
		ok += st[i].ok;
		forks += st[i].forks;
		kills += st[i].kills;
		armed += st[i].faults_armed;
		for (int k = 0; k < N_OPS; k++)
			ops[k] += st[i].ops[k];
	}
	printf("fuzz: %llu calls (%llu succeeded) in %.1f s by %d workers; %llu forks (%llu "
	       "killed); %llu faults armed, %llu injected\n",
	       (unsigned long long)calls, (unsigned long long)ok,
	       (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9,
	       nworkers, (unsigned long long)forks, (unsigned long long)kills,
	       (unsigned long long)armed, (unsigned long long)(inj_after - inj_before));
	printf("fuzz: operations:");
	for (int k = 0; k < N_OPS; k++)
		printf(" %s %llu", op_name[k], (unsigned long long)ops[k]);
	printf("\n");

	vt_begin(&c, "fuzz-uapi-model-holds");
	for (int i = 0; i < nworkers; i++)
		if (st[i].failures)
			vt_fail(&c, "%u violations; first: %s", st[i].failures,
			        st[i].first_failure);
	VT_CHECK(&c, calls > 1000, "only %llu calls made", (unsigned long long)calls);
	vt_end(&c);

	vt_begin(&c, "fuzz-workers-finish");
	VT_CHECK(&c, crashed == 0, "%d workers crashed or hung (seed %llu)", crashed,
	         (unsigned long long)g_seed);
	vt_end(&c);

	vt_begin(&c, "fuzz-cards-idle-after");
	for (int cd = 0; cd < N_CARDS; cd++) {
		bool idle = card_idle(fds[cd]);

		VT_CHECK(&c, idle, "card %s: MEM_FREE %llu of %llu, BO_COUNT %llu (seed %llu)",
		         card_slot[cd],
		         (unsigned long long)vt_param(fds[cd], KVFPGA_PARAM_MEM_FREE),
		         (unsigned long long)vt_param(fds[cd], KVFPGA_PARAM_MEM_TOTAL),
		         (unsigned long long)vt_param(fds[cd], KVFPGA_PARAM_BO_COUNT),
		         (unsigned long long)g_seed);
	}
	if (dir[0])
		VT_CHECK(&c, vt_debugfs_bos_listed(dir) == 0, "debugfs still lists buffers");
	vt_end(&c);

	functional_check(fds[CARD_MAIN]);
	for (int cd = 0; cd < N_CARDS; cd++)
		close(fds[cd]);
	return vt_exit_status();
}
