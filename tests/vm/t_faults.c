/* SPDX-License-Identifier: MIT */
/*
 * In-VM fault injection: the driver's debugfs fail_nth makes the N-th fault
 * point evaluated from then on fail (driver/kvfpga_debugfs.c; sites: the BO
 * struct, the buddy allocation, the mmap offset, the GEM handle, a dma-buf
 * export).  For BO_CREATE, for PRIME export and for a create + export +
 * import + map sequence, N walks 1, 2, ... until the operation completes
 * with the fault unfired.  Every injected failure must give -ENOMEM, leave
 * card memory, BO_COUNT and the driver's buffer list as they were, and be
 * counted in faults_injected; the rig checks the kernel log stays clean.
 * Then two processes create, export and close buffers while faults keep
 * being armed, and every fault fired must surface as exactly one -ENOMEM.
 */
#include <signal.h>
#include <sys/wait.h>

#include "vt_debugfs.h"

#define MiB (1024ULL * 1024ULL)

/* Fault points the driver evaluates on each path (update with the driver). */
#define POINTS_BO_CREATE 4 /* BO struct, buddy, mmap offset, handle */
#define POINTS_EXPORT    1 /* dma-buf export */
#define POINTS_SEQUENCE  (POINTS_BO_CREATE + POINTS_EXPORT) /* import adds none */

struct fi {
	int fd;
	char dir[PATH_MAX];
	uint64_t base_free;
	uint64_t base_count;
	uint64_t base_injected;
	unsigned int failures;
	uint64_t total_injected; /* over every case, for the summary */
};

static int arm(struct fi *f, uint64_t n)
{
	return vt_debugfs_write_u64(f->dir, "fail_nth", n);
}

static uint64_t fail_left(struct fi *f)
{
	uint64_t v = UINT64_MAX;

	vt_debugfs_read_u64(f->dir, "fail_nth", &v);
	return v;
}

static uint64_t injected(struct fi *f)
{
	uint64_t v = UINT64_MAX;

	vt_debugfs_read_u64(f->dir, "faults_injected", &v);
	return v;
}

static void snapshot(struct fi *f)
{
	f->base_free = vt_param(f->fd, KVFPGA_PARAM_MEM_FREE);
	f->base_count = vt_param(f->fd, KVFPGA_PARAM_BO_COUNT);
	f->base_injected = injected(f);
	f->failures = 0;
}

/* Card memory, buffer count and the driver's list are back at the snapshot. */
static void check_unchanged(struct vt_case *c, struct fi *f, const char *when, uint64_t n)
{
	uint64_t free_now = vt_param(f->fd, KVFPGA_PARAM_MEM_FREE);
	uint64_t count = vt_param(f->fd, KVFPGA_PARAM_BO_COUNT);
	long listed = vt_debugfs_bos_listed(f->dir);

	VT_CHECK(c, free_now == f->base_free, "%s (fail_nth %llu): MEM_FREE %llu, was %llu", when,
	         (unsigned long long)n, (unsigned long long)free_now,
	         (unsigned long long)f->base_free);
	VT_CHECK(c, count == f->base_count, "%s (fail_nth %llu): BO_COUNT %llu, was %llu", when,
	         (unsigned long long)n, (unsigned long long)count,
	         (unsigned long long)f->base_count);
	VT_CHECK(c, listed == (long)f->base_count,
	         "%s (fail_nth %llu): debugfs bos lists %ld buffers, BO_COUNT was %llu", when,
	         (unsigned long long)n, listed, (unsigned long long)f->base_count);
}

/*
 * One step of a walk: @ret is what the operation gave with fail_nth armed
 * at @n, @left what fail_nth read afterwards (0: the fault fired).  Returns
 * true when the walk is over (the operation completed with the fault unfired).
 */
static bool judge(struct vt_case *c, struct fi *f, uint64_t n, int ret, uint64_t left)
{
	if (ret == 0) {
		VT_CHECK(c, left != 0, "fail_nth %llu fired but the operation succeeded",
		         (unsigned long long)n);
		return true;
	}
	VT_CHECK(c, left == 0, "failed with %d (%s) at fail_nth %llu without the fault firing", ret,
	         strerror(-ret), (unsigned long long)n);
	VT_CHECK(c, ret == -ENOMEM, "fault %llu gave %d (%s), not -ENOMEM", (unsigned long long)n,
	         ret, strerror(-ret));
	f->failures++;
	VT_CHECK(c, injected(f) == f->base_injected + f->failures,
	         "faults_injected %llu after %u injected failures (was %llu)",
	         (unsigned long long)injected(f), f->failures,
	         (unsigned long long)f->base_injected);
	return false;
}

static void finish_walk(struct vt_case *c, struct fi *f, const char *what, uint64_t points,
                        uint64_t want)
{
	VT_CHECK(c, points == want, "%s evaluated %llu fault points, the driver has %llu", what,
	         (unsigned long long)points, (unsigned long long)want);
	VT_CHECK(c, fail_left(f) == 0, "fail_nth not disarmed");
	printf("faults: %s: %llu fault points, %u failures injected\n", what,
	       (unsigned long long)points, f->failures);
	f->total_injected += f->failures;
}

static void walk_bo_create(struct fi *f, uint64_t size, const char *name)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo = { 0 };
	uint64_t n, left, points = 0;
	int ret;

	vt_begin(&c, name);
	snapshot(f);
	for (n = 1; n <= 32; n++) {
		if (arm(f, n)) {
			vt_fail(&c, "cannot write fail_nth");
			break;
		}
		ret = vt_bo_create(f->fd, size, 0, &bo);
		left = fail_left(f);
		arm(f, 0);
		if (judge(&c, f, n, ret, left)) {
			points = n - 1;
			VT_CHECK(&c, bo.size >= size && vt_gem_close(f->fd, bo.handle) == 0,
			         "the buffer made after the faults is not usable");
			check_unchanged(&c, f, "after closing the good buffer", n);
			break;
		}
		/* Nothing may have been taken: no undo is needed or possible. */
		check_unchanged(&c, f, "BO_CREATE failed", n);
	}
	finish_walk(&c, f, name, points, POINTS_BO_CREATE);
	vt_end(&c);
}

static void walk_export(struct fi *f)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo;
	struct drm_kvfpga_bo_info bi;
	uint64_t n, left, points = 0, before = vt_param(f->fd, KVFPGA_PARAM_MEM_FREE);
	uint8_t *m, *dm;
	int ret, buf;

	vt_begin(&c, "fault-prime-export");
	if (vt_bo_create(f->fd, 2 * MiB, 0, &bo) || !(m = vt_map(f->fd, bo.mmap_offset, bo.size))) {
		vt_fail(&c, "create/map failed");
		vt_end(&c);
		return;
	}
	vm_pattern_fill(m, bo.size, 0xfa17);
	snapshot(f);
	for (n = 1; n <= 32; n++) {
		if (arm(f, n)) {
			vt_fail(&c, "cannot write fail_nth");
			break;
		}
		buf = -1;
		ret = drmPrimeHandleToFD(f->fd, bo.handle, DRM_CLOEXEC | DRM_RDWR, &buf) ? -errno
		                                                                         : 0;
		left = fail_left(f);
		arm(f, 0);
		if (judge(&c, f, n, ret, left)) {
			points = n - 1;
			dm = buf >= 0 ? mmap(NULL, bo.size, PROT_READ, MAP_SHARED, buf, 0)
			              : MAP_FAILED;
			VT_CHECK(&c,
			         dm != MAP_FAILED &&
			                 vm_pattern_check(dm, bo.size, 0xfa17) == bo.size,
			         "the dma-buf made after the faults does not show the buffer");
			if (dm != MAP_FAILED)
				munmap(dm, bo.size);
			if (buf >= 0)
				close(buf);
			break;
		}
		VT_CHECK(&c, buf < 0, "a failed export returned fd %d", buf);
		/* The buffer itself is untouched by the failed export. */
		memset(&bi, 0, sizeof(bi));
		bi.handle = bo.handle;
		VT_CHECK(&c,
		         vt_ioctl(f->fd, DRM_IOCTL_KVFPGA_BO_INFO, &bi) == 0 &&
		                 bi.card_addr == bo.card_addr && bi.size == bo.size,
		         "buffer changed after a failed export");
		VT_CHECK(&c, vm_pattern_check(m, bo.size, 0xfa17) == bo.size,
		         "buffer contents changed after a failed export");
		check_unchanged(&c, f, "export failed", n);
	}
	finish_walk(&c, f, "fault-prime-export", points, POINTS_EXPORT);
	munmap(m, bo.size);
	VT_CHECK(&c, vt_gem_close(f->fd, bo.handle) == 0, "GEM_CLOSE failed");
	VT_CHECK(&c, vt_param(f->fd, KVFPGA_PARAM_MEM_FREE) == before,
	         "card memory not all back after the export walk");
	vt_end(&c);
}

/* Create on one file, export, import on another, map there, see the bytes on both. */
struct sequence {
	int fd_a, fd_b;
	uint64_t size;
	struct drm_kvfpga_bo_create bo;
	uint32_t handle_a, handle_b;
	int buf;
	uint8_t *map_a, *map_b;
};

static int run_sequence(struct sequence *s)
{
	struct drm_kvfpga_bo_info bi;
	int ret;

	s->handle_a = s->handle_b = 0;
	s->buf = -1;
	s->map_a = s->map_b = NULL;
	ret = vt_bo_create(s->fd_a, s->size, 0, &s->bo);
	if (ret)
		return ret;
	s->handle_a = s->bo.handle;
	if (drmPrimeHandleToFD(s->fd_a, s->handle_a, DRM_CLOEXEC | DRM_RDWR, &s->buf))
		return -errno;
	if (drmPrimeFDToHandle(s->fd_b, s->buf, &s->handle_b))
		return -errno;
	memset(&bi, 0, sizeof(bi));
	bi.handle = s->handle_b;
	ret = vt_ioctl(s->fd_b, DRM_IOCTL_KVFPGA_BO_INFO, &bi);
	if (ret)
		return ret;
	if (bi.card_addr != s->bo.card_addr || bi.size != s->bo.size)
		return -EBADE; /* not an injectable failure: judge() reports it */
	s->map_b = vt_map(s->fd_b, bi.mmap_offset, bi.size);
	if (!s->map_b)
		return -errno;
	s->map_a = vt_map(s->fd_a, s->bo.mmap_offset, s->bo.size);
	if (!s->map_a)
		return -errno;
	vm_pattern_fill(s->map_b, s->size, 0x5e9);
	if (vm_pattern_check(s->map_a, s->size, 0x5e9) != s->size)
		return -EBADE;
	return 0;
}

static void undo_sequence(struct sequence *s)
{
	if (s->map_a)
		munmap(s->map_a, s->bo.size);
	if (s->map_b)
		munmap(s->map_b, s->bo.size);
	if (s->handle_b)
		vt_gem_close(s->fd_b, s->handle_b);
	if (s->buf >= 0)
		close(s->buf);
	if (s->handle_a)
		vt_gem_close(s->fd_a, s->handle_a);
}

static void walk_sequence(struct fi *f)
{
	struct vt_case c;
	struct sequence s = { .fd_a = f->fd, .size = 1 * MiB };
	uint64_t n, left, points = 0;
	int ret;

	vt_begin(&c, "fault-create-export-import");
	s.fd_b = vt_open_slot(VT_SLOT_MAIN);
	if (s.fd_b < 0) {
		vt_fail(&c, "second open failed: %d", s.fd_b);
		vt_end(&c);
		return;
	}
	snapshot(f);
	for (n = 1; n <= 32; n++) {
		if (arm(f, n)) {
			vt_fail(&c, "cannot write fail_nth");
			break;
		}
		ret = run_sequence(&s);
		left = fail_left(f);
		arm(f, 0);
		if (judge(&c, f, n, ret, left)) {
			points = n - 1;
			undo_sequence(&s);
			check_unchanged(&c, f, "after the completed sequence", n);
			break;
		}
		undo_sequence(&s);
		check_unchanged(&c, f, "sequence failed and was undone", n);
	}
	finish_walk(&c, f, "fault-create-export-import", points, POINTS_SEQUENCE);
	close(s.fd_b);
	vt_end(&c);
}

/*
 * A child: create, export every other time, close, @rounds times.  Returns
 * how many calls failed with -ENOMEM, or -1 on any other error.
 */
static int churn(const char *slot, int rounds)
{
	int fd = vt_open_slot(slot), enomem = 0;

	if (fd < 0)
		return -1;
	for (int i = 0; i < rounds; i++) {
		struct drm_kvfpga_bo_create bo;
		int ret = vt_bo_create(fd, (uint64_t)(1 + i % 7) * 4096 * 16, 0, &bo);
		int buf = -1;

		if (ret == -ENOMEM) {
			enomem++;
			continue;
		}
		if (ret)
			return -1;
		if (i % 2) {
			if (drmPrimeHandleToFD(fd, bo.handle, DRM_CLOEXEC, &buf) == 0)
				close(buf);
			else if (errno == ENOMEM)
				enomem++;
			else
				return -1;
		}
		if (vt_gem_close(fd, bo.handle))
			return -1;
	}
	close(fd);
	return enomem;
}

static void test_concurrent(struct fi *f)
{
	enum { CHILDREN = 2, ROUNDS = 1000 };
	struct vt_case c;
	int pipes[CHILDREN][2];
	pid_t pids[CHILDREN];
	unsigned int running = CHILDREN, armed = 0;
	uint64_t seen = 0, fired;
	uint64_t rng = 0x5eed;

	vt_begin(&c, "fault-concurrent-create-export");
	snapshot(f);
	for (int i = 0; i < CHILDREN; i++) {
		if (pipe(pipes[i])) {
			vt_fail(&c, "pipe: %s", strerror(errno));
			vt_end(&c);
			return;
		}
		pids[i] = fork();
		if (pids[i] == 0) {
			int enomem = churn(VT_SLOT_MAIN, ROUNDS);

			if (write(pipes[i][1], &enomem, sizeof(enomem)) != sizeof(enomem))
				_exit(2);
			_exit(enomem < 0);
		}
		close(pipes[i][1]);
	}
	/* Keep a fault armed while they run: 1..6 points ahead each time it fires. */
	while (running) {
		struct timespec nap = { 0, 2 * 1000 * 1000 };
		int status;

		running = 0;
		for (int i = 0; i < CHILDREN; i++)
			if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == 0)
				running++;
		if (running && fail_left(f) == 0) {
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			arm(f, 1 + (rng >> 33) % 6);
			armed++;
		}
		nanosleep(&nap, NULL);
	}
	arm(f, 0);
	for (int i = 0; i < CHILDREN; i++) {
		int enomem = -1;

		if (read(pipes[i][0], &enomem, sizeof(enomem)) != sizeof(enomem) || enomem < 0)
			vt_fail(&c, "child %d hit an error other than an injected -ENOMEM", i);
		else
			seen += (uint64_t)enomem;
		close(pipes[i][0]);
	}
	fired = injected(f) - f->base_injected;
	VT_CHECK(&c, fired == seen, "%llu faults fired but the children saw %llu -ENOMEM",
	         (unsigned long long)fired, (unsigned long long)seen);
	VT_CHECK(&c, fired > 0, "no fault fired in %u armings", armed);
	check_unchanged(&c, f, "after the concurrent run", 0);
	printf("faults: concurrent: %u armings, %llu faults fired and seen\n", armed,
	       (unsigned long long)fired);
	f->total_injected += fired;
	vt_end(&c);
}

int main(void)
{
	struct fi f = { 0 };
	struct vt_case c;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	f.fd = vt_open_slot(VT_SLOT_MAIN);
	if (f.fd < 0) {
		printf("FAIL t_faults-open: no kvfpga node for %s: %s\n", VT_SLOT_MAIN,
		       strerror(-f.fd));
		return 1;
	}
	vt_begin(&c, "fault-debugfs-present");
	ret = vt_debugfs_dir(f.fd, VT_SLOT_MAIN, f.dir, sizeof(f.dir));
	VT_CHECK(&c, ret == 0, "no debugfs folder with fail_nth for %s", VT_SLOT_MAIN);
	if (ret == 0) {
		VT_CHECK(&c, fail_left(&f) == 0, "fail_nth armed before the test");
		VT_CHECK(&c,
		         vt_debugfs_mm(f.dir, "total") == vt_param(f.fd, KVFPGA_PARAM_MEM_TOTAL),
		         "debugfs mm disagrees with MEM_TOTAL");
		/* Out-of-range values are refused and leave it disarmed. */
		VT_CHECK(&c, arm(&f, 1ULL << 40) != 0 && fail_left(&f) == 0,
		         "fail_nth accepted 2^40");
		printf("faults: debugfs %s\n", f.dir);
	}
	vt_end(&c);
	if (ret) {
		close(f.fd);
		return vt_exit_status();
	}

	walk_bo_create(&f, 4096, "fault-bo-create-4k");
	walk_bo_create(&f, MiB + 4096, "fault-bo-create-trimmed");
	walk_bo_create(&f, vt_param(f.fd, KVFPGA_PARAM_MAX_BO_SIZE), "fault-bo-create-largest");
	walk_export(&f);
	walk_sequence(&f);
	test_concurrent(&f);

	arm(&f, 0);
	vt_begin(&c, "fault-card-idle-after");
	VT_CHECK(&c, fail_left(&f) == 0, "fail_nth left armed");
	VT_CHECK(&c,
	         vt_param(f.fd, KVFPGA_PARAM_MEM_FREE) == vt_param(f.fd, KVFPGA_PARAM_MEM_TOTAL) &&
	                 vt_param(f.fd, KVFPGA_PARAM_BO_COUNT) == 0,
	         "card not idle after the fault tests");
	vt_end(&c);
	printf("faults: %llu failures injected in all\n", (unsigned long long)f.total_injected);
	close(f.fd);
	return vt_exit_status();
}
