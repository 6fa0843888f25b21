/* SPDX-License-Identifier: MIT */
/*
 * In-VM tests of what crosses file and process boundaries: isolation of
 * handles and mappings, PRIME export/import over a UNIX socket, per-client
 * fdinfo, and many processes and threads at once.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "vmtest.h"

#define MiB (1024ULL * 1024ULL)

static int send_fd(int sock, int fd)
{
	char byte = 'x';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = { .msg_iov = &iov,
		              .msg_iovlen = 1,
		              .msg_control = u.buf,
		              .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -errno;
}

static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = { .msg_iov = &iov,
		              .msg_iovlen = 1,
		              .msg_control = u.buf,
		              .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &msg, 0) != 1)
		return -errno;
	cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -EPROTO;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* Run @fn in a child process; its exit status is the number of failures. */
static int in_child(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int status;

	if (pid == 0)
		_exit(fn(arg));
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		return 100 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

struct peer_args {
	struct drm_kvfpga_bo_create bo; /* the parent's buffer, as numbers */
};

/* A fresh open of the device in another process holds nothing of ours. */
static int peer_probe(void *p)
{
	struct peer_args *a = p;
	struct drm_kvfpga_bo_info bi = { .handle = a->bo.handle };
	int fd = vt_open_slot(VT_SLOT_MAIN), fails = 0;
	void *m;

	if (fd < 0)
		return 1;
	if (vt_ioctl(fd, DRM_IOCTL_KVFPGA_BO_INFO, &bi) != -ENOENT)
		fails++;
	m = mmap(NULL, a->bo.size, PROT_READ, MAP_SHARED, fd, (off_t)a->bo.mmap_offset);
	if (m != MAP_FAILED || errno != EACCES)
		fails++;
	if (vt_gem_close(fd, a->bo.handle) != -EINVAL)
		fails++;
	close(fd);
	return fails;
}

static void test_isolation(int fd)
{
	struct vt_case c;
	struct peer_args a;
	struct drm_kvfpga_bo_info bi;
	int fd2;
	void *m;

	vt_begin(&c, "isolation-other-fd");
	if (vt_bo_create(fd, MiB, 0, &a.bo)) {
		vt_fail(&c, "create failed");
		vt_end(&c);
		return;
	}
	fd2 = vt_open_slot(VT_SLOT_MAIN);
	memset(&bi, 0, sizeof(bi));
	bi.handle = a.bo.handle;
	VT_CHECK(&c, vt_ioctl(fd2, DRM_IOCTL_KVFPGA_BO_INFO, &bi) == -ENOENT,
	         "another fd sees the handle");
	m = mmap(NULL, a.bo.size, PROT_READ, MAP_SHARED, fd2, (off_t)a.bo.mmap_offset);
	VT_CHECK(&c, m == MAP_FAILED && errno == EACCES, "another fd maps the buffer: %s",
	         m == MAP_FAILED ? strerror(errno) : "allowed");
	if (m != MAP_FAILED)
		munmap(m, a.bo.size);
	close(fd2);
	vt_end(&c);

	vt_begin(&c, "isolation-other-process");
	VT_CHECK(&c, in_child(peer_probe, &a) == 0, "another process reached the buffer");
	vt_gem_close(fd, a.bo.handle);
	vt_end(&c);
}

struct prime_args {
	int sock;
	uint64_t card_addr, size;
};

/* The importer: its own device fd, a dma-buf fd from the socket. */
static int prime_importer(void *p)
{
	struct prime_args *a = p;
	int fd = vt_open_slot(VT_SLOT_MAIN), buf, fails = 0;
	uint32_t handle, handle2;
	struct drm_kvfpga_bo_info bi;
	uint8_t *m1, *m2;

	if (fd < 0)
		return 1;
	buf = recv_fd(a->sock);
	if (buf < 0)
		return 2;
	if (drmPrimeFDToHandle(fd, buf, &handle))
		return 3;
	/* Importing again gives the same handle. */
	if (drmPrimeFDToHandle(fd, buf, &handle2) || handle2 != handle)
		fails++;
	memset(&bi, 0, sizeof(bi));
	bi.handle = handle;
	if (vt_ioctl(fd, DRM_IOCTL_KVFPGA_BO_INFO, &bi) || bi.card_addr != a->card_addr ||
	    bi.size != a->size)
		fails++;
	m1 = vt_map(fd, bi.mmap_offset, bi.size);
	m2 = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
	if (!m1 || m2 == MAP_FAILED)
		return fails + 10;
	/* The exporter's bytes, seen both ways. */
	if (vm_pattern_check(m1, a->size, 1234) != a->size ||
	    vm_pattern_check(m2, a->size, 1234) != a->size)
		fails++;
	/* Write back through the dma-buf mapping. */
	vm_pattern_fill(m2, a->size, 4321);
	munmap(m1, a->size);
	munmap(m2, a->size);
	drmCloseBufferHandle(fd, handle);
	close(buf);
	close(fd);
	return fails;
}

static void test_prime(int fd)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo;
	struct prime_args a;
	int sv[2], buf = -1, rc;
	uint8_t *m;

	vt_begin(&c, "prime-export-import-across-processes");
	if (vt_bo_create(fd, 2 * MiB, 0, &bo) || !(m = vt_map(fd, bo.mmap_offset, bo.size))) {
		vt_fail(&c, "create/map failed");
		vt_end(&c);
		return;
	}
	vm_pattern_fill(m, bo.size, 1234);
	VT_CHECK(&c, drmPrimeHandleToFD(fd, bo.handle, DRM_CLOEXEC | DRM_RDWR, &buf) == 0,
	         "export failed: %s", strerror(errno));
	if (buf < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		vt_fail(&c, "no dma-buf fd or socket");
		vt_end(&c);
		return;
	}
	a.sock = sv[1];
	a.card_addr = bo.card_addr;
	a.size = bo.size;
	VT_CHECK(&c, send_fd(sv[0], buf) == 0, "send failed");
	rc = in_child(prime_importer, &a);
	VT_CHECK(&c, rc == 0, "importer reported %d failures", rc);
	VT_CHECK(&c, vm_pattern_check(m, bo.size, 4321) == bo.size,
	         "exporter does not see the importer's writes");
	close(sv[0]);
	close(sv[1]);

	/* The dma-buf keeps the buffer alive after the exporter's handle goes. */
	vt_gem_close(fd, bo.handle);
	munmap(m, bo.size);
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 1, "dma-buf did not keep the buffer");
	{
		uint8_t *m2 = mmap(NULL, bo.size, PROT_READ, MAP_SHARED, buf, 0);

		VT_CHECK(&c, m2 != MAP_FAILED && vm_pattern_check(m2, bo.size, 4321) == bo.size,
		         "dma-buf mapping after handle close");
		if (m2 != MAP_FAILED)
			munmap(m2, bo.size);
		m2 = mmap(NULL, bo.size + 4096, PROT_READ, MAP_SHARED, buf, 0);
		VT_CHECK(&c, m2 == MAP_FAILED, "dma-buf mapping larger than the buffer allowed");
		m2 = mmap(NULL, bo.size, PROT_READ, MAP_PRIVATE, buf, 0);
		VT_CHECK(&c, m2 == MAP_FAILED, "private dma-buf mapping allowed");
	}
	close(buf);
	VT_CHECK(&c, vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 0, "buffer outlived its dma-buf");
	vt_end(&c);
}

static uint64_t fdinfo_kib(int fd, const char *key)
{
	char path[64], line[256];
	FILE *f;
	uint64_t v = UINT64_MAX;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(key);

		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtoull(line + n + 1, NULL, 10);
	}
	fclose(f);
	return v;
}

static int fdinfo_has(int fd, const char *text)
{
	char path[64], line[256];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, text))
			found = 1;
	fclose(f);
	return found;
}

static void test_fdinfo(void)
{
	struct vt_case c;
	int fd = vt_open_slot(VT_SLOT_MAIN), buf = -1;
	struct drm_kvfpga_bo_create a, b;

	vt_begin(&c, "fdinfo-per-client-memory");
	VT_CHECK(&c, fdinfo_has(fd, "drm-driver:\tkvfpga"), "no drm-driver key");
	VT_CHECK(&c, fdinfo_has(fd, "drm-client-id:"), "no drm-client-id key");
	VT_CHECK(&c, fdinfo_kib(fd, "drm-total-card") == 0, "idle client has memory");
	if (vt_bo_create(fd, 3 * MiB, 0, &a) || vt_bo_create(fd, 5 * MiB, 0, &b)) {
		vt_fail(&c, "create failed");
		vt_end(&c);
		return;
	}
	VT_CHECK(&c, fdinfo_kib(fd, "drm-total-card") == 8 * 1024, "drm-total-card %llu KiB",
	         (unsigned long long)fdinfo_kib(fd, "drm-total-card"));
	VT_CHECK(&c, fdinfo_kib(fd, "drm-memory-card") == 8 * 1024, "drm-memory-card");
	VT_CHECK(&c, fdinfo_kib(fd, "drm-shared-card") == 0, "nothing shared yet");
	drmPrimeHandleToFD(fd, b.handle, DRM_CLOEXEC, &buf);
	VT_CHECK(&c, fdinfo_kib(fd, "drm-shared-card") == 5 * 1024, "exported buffer not shared");
	vt_gem_close(fd, a.handle);
	vt_gem_close(fd, b.handle);
	VT_CHECK(&c, fdinfo_kib(fd, "drm-total-card") == 0, "memory counted after close");
	close(buf);
	close(fd);
	vt_end(&c);
}

/* Several processes, two threads each, allocating, mapping, checking, freeing. */
struct worker {
	int fd;
	unsigned int seed;
	int fails;
	int iterations;
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	time_t end = time(NULL) + 4;

	while (time(NULL) < end && w->iterations < 2000) {
		uint64_t size = 4096ULL * (1 + rand_r(&w->seed) % 256);
		struct drm_kvfpga_bo_create bo;
		uint8_t *m;
		int ret = vt_bo_create(w->fd, size, 0, &bo);

		w->iterations++;
		if (ret == -ENOSPC)
			continue;
		if (ret) {
			w->fails++;
			continue;
		}
		m = vt_map(w->fd, bo.mmap_offset, bo.size);
		if (!m) {
			w->fails++;
		} else {
			uint64_t seed = ((uint64_t)getpid() << 32) | (uint64_t)w->iterations;

			if (m[0] != 0 || m[bo.size - 1] != 0)
				w->fails++;
			vm_pattern_fill(m, bo.size, seed);
			if (vm_pattern_check(m, bo.size, seed) != bo.size)
				w->fails++;
			munmap(m, bo.size);
		}
		if (vt_gem_close(w->fd, bo.handle))
			w->fails++;
	}
	return NULL;
}

static int stress_process(void *p)
{
	int fd = vt_open_slot(VT_SLOT_MAIN), fails = 0;
	struct worker w[2];
	pthread_t t[2];

	(void)p;
	if (fd < 0)
		return 1;
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){ .fd = fd,
			                .seed = (unsigned int)getpid() * 7u + (unsigned int)i };
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		fails += w[i].fails;
		if (w[i].iterations == 0)
			fails++;
	}
	/* Die with buffers open half the time: closing the fd must free them. */
	if (getpid() & 1) {
		struct drm_kvfpga_bo_create bo;

		vt_bo_create(fd, MiB, 0, &bo);
		_exit(fails > 0);
	}
	close(fd);
	return fails > 0;
}

static void test_concurrency(int fd)
{
	struct vt_case c;
	pid_t pids[4];
	int bad = 0;
	uint64_t total = vt_param(fd, KVFPGA_PARAM_MEM_TOTAL);

	vt_begin(&c, "concurrent-processes-and-threads");
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(stress_process(NULL));
	}
	for (int i = 0; i < 4; i++) {
		int status;

		if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			bad++;
	}
	VT_CHECK(&c, bad == 0, "%d of 4 processes saw errors", bad);
	VT_CHECK(&c,
	         vt_param(fd, KVFPGA_PARAM_MEM_FREE) == total &&
	                 vt_param(fd, KVFPGA_PARAM_BO_COUNT) == 0,
	         "after the storm: free %llu of %llu, %llu buffers",
	         (unsigned long long)vt_param(fd, KVFPGA_PARAM_MEM_FREE), (unsigned long long)total,
	         (unsigned long long)vt_param(fd, KVFPGA_PARAM_BO_COUNT));
	vt_end(&c);
}

static void test_sysfs(int fd)
{
	struct vt_case c;
	struct drm_kvfpga_bo_create bo;
	char path[128], buf[64];
	FILE *f;

	vt_begin(&c, "sysfs-attributes");
	vt_bo_create(fd, 7 * MiB, 0, &bo);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/kvfpga/mem_used", VT_SLOT_MAIN);
	f = fopen(path, "r");
	VT_CHECK(&c, f && fgets(buf, sizeof(buf), f) && strtoull(buf, NULL, 10) == 7 * MiB,
	         "mem_used does not show 7 MiB");
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/kvfpga/card_name", VT_SLOT_MAIN);
	f = fopen(path, "r");
	VT_CHECK(&c, f && fgets(buf, sizeof(buf), f) && !strcmp(buf, "kvfpga-sim\n"), "card_name");
	if (f)
		fclose(f);
	vt_gem_close(fd, bo.handle);
	vt_end(&c);
}

int main(void)
{
	int fd = vt_open_slot(VT_SLOT_MAIN);

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fd < 0) {
		printf("FAIL t_share-open: no kvfpga node for %s\n", VT_SLOT_MAIN);
		return 1;
	}
	test_isolation(fd);
	test_prime(fd);
	test_fdinfo();
	test_sysfs(fd);
	test_concurrency(fd);
	close(fd);
	return vt_exit_status();
}
