/* SPDX-License-Identifier: MIT */
/*
 * In-VM tests of kvfpga.ko on one card: info, buffers, mappings, what lands
 * in card memory, zeroing, exhaustion, fragmentation and every rejected
 * input.  Runs as root in the test VM (tests/vm/guest.sh).
 */
#include "vmtest.h"

#define MiB (1024ULL * 1024ULL)

struct bo {
	struct drm_kvfpga_bo_create c;
	void *map;
};

static uint64_t expected_mem_size(const char *slot)
{
	/* KVFPGA_CARDS="slot=kind:size ...", sizes as 256M / 64M. */
	const char *cards = getenv("KVFPGA_CARDS");
	const char *p = cards ? strstr(cards, slot) : NULL;

	if (!p || !(p = strchr(p, '=')) || !(p = strchr(p, ':')))
		return 0;
	return strtoull(p + 1, NULL, 10) * MiB;
}

static void test_info(int fd)
{
	struct vt_case c;
	struct drm_kvfpga_info info;
	struct drm_kvfpga_get_param gp;
	uint64_t want = expected_mem_size(VT_SLOT_MAIN);

	vt_begin(&c, "info");
	memset(&info, 0, sizeof(info));
	VT_CHECK(&c, vt_ioctl(fd, DRM_IOCTL_KVFPGA_GET_INFO, &info) == 0, "GET_INFO failed");
	VT_CHECK(&c, info.abi_major == KVFPGA_ABI_MAJOR, "abi_major %u", info.abi_major);
	VT_CHECK(&c, want && info.mem_size == want, "mem_size %llu, host file is %llu",
	         (unsigned long long)info.mem_size, (unsigned long long)want);
	VT_CHECK(&c, info.granule == 4096, "granule %llu", (unsigned long long)info.granule);
	VT_CHECK(&c, info.mem_total == info.mem_size - 4096, "mem_total %llu",
	         (unsigned long long)info.mem_total);
	VT_CHECK(&c, info.mem_free == info.mem_total, "mem_free %llu on an idle card",
	         (unsigned long long)info.mem_free);
	VT_CHECK(&c, info.max_bo_size == info.mem_size / 2, "max_bo_size %llu",
	         (unsigned long long)info.max_bo_size);
	VT_CHECK(&c, !strcmp(info.name, "kvfpga-sim") && !strcmp(info.serial, "SIM0"),
	         "name '%s' serial '%s'", info.name, info.serial);
	VT_CHECK(&c, info.desc_version == 1 && info.bo_count == 0, "desc_version %u bo_count %u",
	         info.desc_version, info.bo_count);
	VT_CHECK(&c,
	         vt_param(fd, KVFPGA_PARAM_ABI_VERSION) ==
	                 ((KVFPGA_ABI_MAJOR << 16) | KVFPGA_ABI_MINOR),
	         "ABI_VERSION param");
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_MEM_SIZE) == info.mem_size, "MEM_SIZE param");
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_MEM_TOTAL) == info.mem_total, "MEM_TOTAL param");
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_MEM_FREE) == info.mem_free, "MEM_FREE param");
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_GRANULE) == info.granule, "GRANULE param");
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_MAX_BO_SIZE) == info.max_bo_size, "MAX_BO_SIZE");
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 0, "BO_COUNT param");
	VT_CHECK(&c,
	         vt_param(fd, KVFPGA_PARAM_CAPABILITIES) == info.capabilities &&
	                 (info.capabilities & KVFPGA_CAP_CONTIGUOUS),
	         "CAPABILITIES param");
	vt_end(&c);

	vt_begin(&c, "info-rejects-bad-input");
	memset(&gp, 0, sizeof(gp));
	gp.param = 0x1000;
	VT_CHECK(&c, vt_ioctl(fd, DRM_IOCTL_KVFPGA_GET_PARAM, &gp) == -EINVAL, "unknown param");
	gp.param = KVFPGA_PARAM_GRANULE;
	gp.pad = 1;
	VT_CHECK(&c, vt_ioctl(fd, DRM_IOCTL_KVFPGA_GET_PARAM, &gp) == -EINVAL, "pad != 0");
	memset(&info, 0, sizeof(info));
	info.flags = 1;
	VT_CHECK(&c, vt_ioctl(fd, DRM_IOCTL_KVFPGA_GET_INFO, &info) == -EINVAL, "info flags");
	memset(&info, 0, sizeof(info));
	info.pad = 1;
	VT_CHECK(&c, vt_ioctl(fd, DRM_IOCTL_KVFPGA_GET_INFO, &info) == -EINVAL, "info pad");
	vt_end(&c);
}

static void test_create_map(int fd)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo;
	struct drm_kvfpga_bo_info bi;
	uint8_t *p;

	vt_begin(&c, "create-map-write-read");
	if (vt_bo_create(fd, MiB + 1, 0, &bo)) {
		vt_fail(&c, "BO_CREATE of 1 MiB + 1 failed");
		vt_end(&c);
		return;
	}
	VT_CHECK(&c, bo.size == MiB + 4096, "size rounded to %llu", (unsigned long long)bo.size);
	VT_CHECK(&c,
	         bo.card_addr % 4096 == 0 && bo.card_addr >= 4096 &&
	                 bo.card_addr + bo.size <= vt_param(fd, KVFPGA_PARAM_MEM_SIZE),
	         "card_addr %#llx", (unsigned long long)bo.card_addr);
	memset(&bi, 0, sizeof(bi));
	bi.handle = bo.handle;
	VT_CHECK(&c,
	         vt_ioctl(fd, DRM_IOCTL_KVFPGA_BO_INFO, &bi) == 0 && bi.size == bo.size &&
	                 bi.card_addr == bo.card_addr && bi.mmap_offset == bo.mmap_offset,
	         "BO_INFO disagrees with BO_CREATE");
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 1, "BO_COUNT != 1");
	p = vt_map(fd, bo.mmap_offset, bo.size);
	VT_CHECK(&c, p != NULL, "mmap failed: %s", strerror(errno));
	if (p) {
		for (size_t i = 0; i < bo.size; i += 4096)
			VT_CHECK(&c, p[i] == 0, "new buffer not zero at %zu", i);
		vm_pattern_fill(p, bo.size, 42);
		VT_CHECK(&c, vm_pattern_check(p, bo.size, 42) == bo.size, "read back differs");
		munmap(p, bo.size);
	}
	VT_CHECK(&c, vt_gem_close(fd, bo.handle) == 0, "GEM_CLOSE failed");
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 0, "BO_COUNT != 0 after close");
	vt_end(&c);
}

/* Bytes written through a guest mapping are in the host's backing file, at card_addr. */
static void test_host_sees_guest(int fd)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo;
	char why[256] = "";
	uint8_t *p;

	vt_begin(&c, "guest-writes-land-in-card-memory");
	if (vt_bo_create(fd, 2 * MiB, 0, &bo) || !(p = vt_map(fd, bo.mmap_offset, bo.size))) {
		vt_fail(&c, "create/map failed");
		vt_end(&c);
		return;
	}
	vm_pattern_fill(p, bo.size, 0x5eed);
	msync(p, bo.size, MS_SYNC);
	VT_CHECK(&c,
	         vt_host(VT_SLOT_MAIN, "verify", bo.card_addr, bo.size, 0x5eed, why, sizeof(why)) ==
	                 0,
	         "host check at card_addr %#llx: %s", (unsigned long long)bo.card_addr, why);
	/* The check can fail: the same bytes are not there under another seed. */
	VT_CHECK(&c,
	         vt_host(VT_SLOT_MAIN, "verify", bo.card_addr, bo.size, 0x5eee, why, sizeof(why)) ==
	                 -EIO,
	         "host check passed with a wrong seed");
	munmap(p, bo.size);
	vt_gem_close(fd, bo.handle);
	vt_end(&c);

	vt_begin(&c, "host-writes-appear-in-mapping");
	if (vt_bo_create(fd, 3 * MiB, 0, &bo) || !(p = vt_map(fd, bo.mmap_offset, bo.size))) {
		vt_fail(&c, "create/map failed");
		vt_end(&c);
		return;
	}
	VT_CHECK(&c,
	         vt_host(VT_SLOT_MAIN, "plant", bo.card_addr, bo.size, 77, why, sizeof(why)) == 0,
	         "plant: %s", why);
	VT_CHECK(&c, vm_pattern_check(p, bo.size, 77) == bo.size, "planted bytes not seen");
	munmap(p, bo.size);
	vt_gem_close(fd, bo.handle);
	vt_end(&c);
}

/* Fill the card greedily: largest pieces first, down to the granule. */
static size_t fill_card(int fd, struct bo *bos, size_t max, int *last_err)
{
	uint64_t size = vt_param(fd, KVFPGA_PARAM_MAX_BO_SIZE);
	size_t n = 0;

	*last_err = 0;
	while (n < max && size >= 4096) {
		int ret = vt_bo_create(fd, size, 0, &bos[n].c);

		if (ret == 0) {
			bos[n].map = NULL;
			n++;
			continue;
		}
		*last_err = ret;
		if (ret != -ENOSPC)
			break;
		size /= 2;
	}
	return n;
}

static void free_all(int fd, struct bo *bos, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (bos[i].map)
			munmap(bos[i].map, bos[i].c.size);
		vt_gem_close(fd, bos[i].c.handle);
	}
}

static void test_exhaustion_and_zeroing(int fd)
{
	static struct bo bos[512];
	struct vt_case c;
	uint64_t total = vt_param(fd, KVFPGA_PARAM_MEM_TOTAL);
	size_t n, n2, i;
	int err;

	vt_begin(&c, "exhaustion-enospc-and-recovery");
	n = fill_card(fd, bos, 512, &err);
	VT_CHECK(&c, err == -ENOSPC, "filling stopped with %d, not -ENOSPC", err);
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_MEM_FREE) == 0, "card full but MEM_FREE %llu",
	         (unsigned long long)vt_param(fd, KVFPGA_PARAM_MEM_FREE));
	VT_CHECK(&c, vt_bo_create(fd, 4096, 0, NULL) == -ENOSPC, "full card gave a buffer");
	/* Dirty every byte so the refill below can prove zeroing. */
	for (i = 0; i < n; i++) {
		bos[i].map = vt_map(fd, bos[i].c.mmap_offset, bos[i].c.size);
		if (!bos[i].map) {
			vt_fail(&c, "map %zu failed", i);
			break;
		}
		memset(bos[i].map, 0xa5, bos[i].c.size);
	}
	free_all(fd, bos, n);
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_MEM_FREE) == total, "memory not all free again");
	n2 = fill_card(fd, bos, 512, &err);
	VT_CHECK(&c, n2 == n && err == -ENOSPC, "refill gave %zu buffers, first fill %zu", n2, n);
	vt_end(&c);

	vt_begin(&c, "zeroed-before-reuse");
	for (i = 0; i < n2; i++) {
		const uint64_t *w;

		bos[i].map = vt_map(fd, bos[i].c.mmap_offset, bos[i].c.size);
		if (!bos[i].map) {
			vt_fail(&c, "map %zu failed", i);
			break;
		}
		w = bos[i].map;
		for (size_t k = 0; k < bos[i].c.size / 8; k++) {
			if (w[k]) {
				vt_fail(&c,
				        "buffer %zu word %zu holds %#llx from its earlier owner", i,
				        k, (unsigned long long)w[k]);
				break;
			}
		}
	}
	free_all(fd, bos, n2);
	vt_end(&c);
}

static void test_fragmentation(int fd)
{
	static struct bo bos[512];
	struct vt_case c;
	size_t n = 0;
	uint64_t total = vt_param(fd, KVFPGA_PARAM_MEM_TOTAL);

	vt_begin(&c, "fragmentation-and-merge");
	while (n < 512 && vt_bo_create(fd, MiB, 0, &bos[n].c) == 0)
		bos[n++].map = NULL;
	VT_CHECK(&c, n >= 200, "only %zu 1 MiB buffers fit", n);
	for (size_t i = 0; i < n; i += 2)
		vt_gem_close(fd, bos[i].c.handle);
	/* Half the card is free but no 2 MiB range is. */
	VT_CHECK(&c, vt_bo_create(fd, 2 * MiB, 0, NULL) == -ENOSPC,
	         "2 MiB fit into a card fragmented into 1 MiB holes");
	for (size_t i = 1; i < n; i += 2)
		vt_gem_close(fd, bos[i].c.handle);
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_MEM_FREE) == total, "memory not all free");
	{
		struct drm_kvfpga_bo_create big;
		uint64_t max = vt_param(fd, KVFPGA_PARAM_MAX_BO_SIZE);

		VT_CHECK(&c, vt_bo_create(fd, max, 0, &big) == 0,
		         "largest buffer does not fit after freeing everything");
		vt_gem_close(fd, big.handle);
	}
	vt_end(&c);
}

static void test_rejects(int fd)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo;
	struct drm_kvfpga_bo_info bi;
	uint64_t free0 = vt_param(fd, KVFPGA_PARAM_MEM_FREE);
	uint64_t total = vt_param(fd, KVFPGA_PARAM_MEM_TOTAL);
	void *p;

	vt_begin(&c, "bo-create-rejects-bad-input");
	VT_CHECK(&c, vt_bo_create(fd, 4096, 1, NULL) == -EINVAL, "flags 1");
	VT_CHECK(&c, vt_bo_create(fd, 4096, 0x80000000u, NULL) == -EINVAL, "flags bit 31");
	VT_CHECK(&c, vt_bo_create(fd, 0, 0, NULL) == -EINVAL, "size 0");
	VT_CHECK(&c, vt_bo_create(fd, total + 1, 0, NULL) == -E2BIG, "size > card");
	VT_CHECK(&c, vt_bo_create(fd, UINT64_MAX, 0, NULL) == -E2BIG, "size UINT64_MAX");
	VT_CHECK(&c, vt_bo_create(fd, UINT64_MAX - 4095, 0, NULL) == -E2BIG,
	         "size near UINT64_MAX");
	VT_CHECK(&c,
	         vt_param(fd, KVFPGA_PARAM_MEM_FREE) == free0 &&
	                 vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 0,
	         "a rejected create leaked memory");
	vt_end(&c);

	vt_begin(&c, "handles-reject-bad-input");
	memset(&bi, 0, sizeof(bi));
	bi.handle = 12345;
	VT_CHECK(&c, vt_ioctl(fd, DRM_IOCTL_KVFPGA_BO_INFO, &bi) == -ENOENT, "BO_INFO bad handle");
	VT_CHECK(&c, vt_gem_close(fd, 12345) == -EINVAL, "GEM_CLOSE bad handle");
	if (vt_bo_create(fd, 64 * 1024, 0, &bo) == 0) {
		memset(&bi, 0, sizeof(bi));
		bi.handle = bo.handle;
		bi.flags = 1;
		VT_CHECK(&c, vt_ioctl(fd, DRM_IOCTL_KVFPGA_BO_INFO, &bi) == -EINVAL,
		         "BO_INFO flags");
		vt_gem_close(fd, bo.handle);
		VT_CHECK(&c, vt_gem_close(fd, bo.handle) == -EINVAL, "double GEM_CLOSE");
	} else {
		vt_fail(&c, "create failed");
	}
	vt_end(&c);

	vt_begin(&c, "mmap-rejects-bad-requests");
	if (vt_bo_create(fd, 64 * 1024, 0, &bo)) {
		vt_fail(&c, "create failed");
		vt_end(&c);
		return;
	}
	errno = 0;
	p = mmap(NULL, bo.size + 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	         (off_t)bo.mmap_offset);
	VT_CHECK(&c, p == MAP_FAILED && errno == EINVAL, "mapping larger than the buffer: %s",
	         p == MAP_FAILED ? strerror(errno) : "allowed");
	if (p != MAP_FAILED)
		munmap(p, bo.size + 4096);
	p = mmap(NULL, bo.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	         (off_t)(bo.mmap_offset + 4096));
	VT_CHECK(&c, p == MAP_FAILED && errno == EINVAL,
	         "mapping the buffer's size from a page in: %s",
	         p == MAP_FAILED ? strerror(errno) : "allowed");
	if (p != MAP_FAILED)
		munmap(p, bo.size);
	/* The start of the buffer, shorter than it, is fine. */
	p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)bo.mmap_offset);
	VT_CHECK(&c, p != MAP_FAILED, "short mapping refused: %s", strerror(errno));
	if (p != MAP_FAILED)
		munmap(p, 8192);
	p = mmap(NULL, bo.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, (off_t)bo.mmap_offset);
	VT_CHECK(&c, p == MAP_FAILED && errno == EINVAL, "private mapping: %s",
	         p == MAP_FAILED ? strerror(errno) : "allowed");
	if (p != MAP_FAILED)
		munmap(p, bo.size);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, (off_t)(bo.mmap_offset + (1ULL << 40)));
	VT_CHECK(&c, p == MAP_FAILED && errno == EINVAL, "offset of no buffer: %s",
	         p == MAP_FAILED ? strerror(errno) : "allowed");
	if (p != MAP_FAILED)
		munmap(p, 4096);
	vt_gem_close(fd, bo.handle);
	p = mmap(NULL, bo.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)bo.mmap_offset);
	VT_CHECK(&c, p == MAP_FAILED && errno == EINVAL, "mapping after close: %s",
	         p == MAP_FAILED ? strerror(errno) : "allowed");
	if (p != MAP_FAILED)
		munmap(p, bo.size);
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_MEM_FREE) == free0, "memory leaked");
	vt_end(&c);
}

static void test_mapping_outlives_handle(int fd)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo;
	uint8_t *p;

	vt_begin(&c, "mapping-outlives-handle");
	if (vt_bo_create(fd, 256 * 1024, 0, &bo) || !(p = vt_map(fd, bo.mmap_offset, bo.size))) {
		vt_fail(&c, "create/map failed");
		vt_end(&c);
		return;
	}
	vm_pattern_fill(p, 4096, 9);
	VT_CHECK(&c, vt_gem_close(fd, bo.handle) == 0, "close failed");
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 1, "buffer freed under a live mapping");
	vm_pattern_fill(p + 4096, bo.size - 4096, 10);
	VT_CHECK(&c,
	         vm_pattern_check(p, 4096, 9) == 4096 &&
	                 vm_pattern_check(p + 4096, bo.size - 4096, 10) == bo.size - 4096,
	         "mapping lost its bytes after close");
	munmap(p, bo.size);
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 0, "buffer not freed after munmap");
	vt_end(&c);
}

static void test_second_card(void)
{
	struct vt_case c;
	int fd2 = vt_open_slot(VT_SLOT_SECOND);
	struct drm_kvfpga_info info;

	vt_begin(&c, "second-card-independent");
	if (fd2 < 0) {
		vt_fail(&c, "second card not found: %d", fd2);
		vt_end(&c);
		return;
	}
	memset(&info, 0, sizeof(info));
	VT_CHECK(&c,
	         vt_ioctl(fd2, DRM_IOCTL_KVFPGA_GET_INFO, &info) == 0 &&
	                 info.mem_size == expected_mem_size(VT_SLOT_SECOND) &&
	                 !strcmp(info.serial, "SIM2"),
	         "second card info: size %llu serial %s", (unsigned long long)info.mem_size,
	         info.serial);
	VT_CHECK(&c, vt_bo_create(fd2, info.max_bo_size, 0, NULL) == 0,
	         "largest buffer on the second card failed");
	close(fd2);
	vt_end(&c);
}

int main(void)
{
	int fd = vt_open_slot(VT_SLOT_MAIN);

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fd < 0) {
		printf("FAIL t_basic-open: no kvfpga node for %s: %s\n", VT_SLOT_MAIN,
		       strerror(-fd));
		return 1;
	}
	test_info(fd);
	test_create_map(fd);
	test_host_sees_guest(fd);
	test_rejects(fd);
	test_mapping_outlives_handle(fd);
	test_exhaustion_and_zeroing(fd);
	test_fragmentation(fd);
	test_second_card();
	close(fd);
	return vt_exit_status();
}
