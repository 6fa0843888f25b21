// SPDX-License-Identifier: MIT
/*
 * The card backend: a kvfpga device node (/dev/accel/accelN on Linux >=
 * 6.2, /dev/dri/renderDN on 6.1) through the uapi in kvfpga_accel.h.
 *
 * GEM handles are per open file and not reference counted: importing a
 * dma-buf of a buffer this fd already holds returns the same handle.  So
 * the device keeps a table of its handles with a count of the kvfpga_bo
 * that use each, and closes a handle only when the last one goes (the
 * same scheme libdrm's header asks of its users).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xf86drm.h>

#include "device_internal.h"
#include "kvfpga_accel.h"

struct drm_handle_ref {
	uint32_t handle;
	unsigned refs;
	struct drm_handle_ref *prev, *next;
};

struct drm_device {
	struct kvfpga_device base;
	int fd;
	char node[64];
	char pci_slot[32];
	pthread_mutex_t lock; /* guards @handles */
	struct drm_handle_ref *handles;
};

struct drm_bo {
	struct kvfpga_bo base;
	struct drm_handle_ref *ref;
};

static struct drm_device *to_drm(struct kvfpga_device *dev)
{
	return kvfpga_container_of(dev, struct drm_device, base);
}

static struct drm_bo *to_drm_bo(struct kvfpga_bo *bo)
{
	return kvfpga_container_of(bo, struct drm_bo, base);
}

/* drmIoctl and the libdrm PRIME helpers return -1 and set errno. */
static int ioctl_errno(int fd, unsigned long request, void *arg)
{
	return drmIoctl(fd, request, arg) ? -errno : 0;
}

int kvfpga_drm_check_driver(int fd)
{
	drmVersionPtr version = drmGetVersion(fd);
	int ret;

	if (!version)
		return -ENODEV;
	ret = version->name && !strcmp(version->name, "kvfpga") ? 0 : -ENODEV;
	drmFreeVersion(version);
	return ret;
}

static int get_param(int fd, uint32_t param, uint64_t *value)
{
	struct drm_kvfpga_get_param p = { .param = param };
	int ret = ioctl_errno(fd, DRM_IOCTL_KVFPGA_GET_PARAM, &p);

	if (!ret)
		*value = p.value;
	return ret;
}

static void drm_destroy(struct kvfpga_device *dev)
{
	struct drm_device *d = to_drm(dev);

	/* Every buffer held a reference, so the table is empty by now. */
	close(d->fd);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static int drm_query(struct kvfpga_device *dev, struct kvfpga_device_info *info)
{
	struct drm_device *d = to_drm(dev);
	struct drm_kvfpga_info in = { 0 };
	struct kvfpga_device_info out = { 0 };
	char name[KVFPGA_NAME_LEN + 1] = { 0 }, serial[KVFPGA_NAME_LEN + 1] = { 0 };
	int ret = ioctl_errno(d->fd, DRM_IOCTL_KVFPGA_GET_INFO, &in);

	if (ret)
		return ret;
	out.backend = KVFPGA_BACKEND_CARD;
	out.abi_major = in.abi_major;
	out.abi_minor = in.abi_minor;
	out.capabilities = in.capabilities;
	out.mem_size = in.mem_size;
	out.mem_total = in.mem_total;
	out.mem_free = in.mem_free;
	out.granule = in.granule;
	out.max_bo_size = in.max_bo_size;
	out.bo_count = in.bo_count;
	/* The kernel NUL-terminates them; do not rely on it. */
	memcpy(name, in.name, KVFPGA_NAME_LEN);
	memcpy(serial, in.serial, KVFPGA_NAME_LEN);
	kvfpga_copy_string(out.name, sizeof(out.name), name);
	kvfpga_copy_string(out.serial, sizeof(out.serial), serial);
	kvfpga_copy_string(out.node, sizeof(out.node), d->node);
	kvfpga_copy_string(out.pci_slot, sizeof(out.pci_slot), d->pci_slot);
	*info = out;
	return 0;
}

static struct drm_handle_ref *find_handle(struct drm_device *d, uint32_t handle)
{
	for (struct drm_handle_ref *r = d->handles; r; r = r->next) {
		if (r->handle == handle)
			return r;
	}
	return NULL;
}

static void link_handle(struct drm_device *d, struct drm_handle_ref *r)
{
	r->prev = NULL;
	r->next = d->handles;
	if (d->handles)
		d->handles->prev = r;
	d->handles = r;
}

static void unlink_handle(struct drm_device *d, struct drm_handle_ref *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		d->handles = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

static void fill_bo(struct drm_bo *b, struct drm_device *d, uint64_t size, uint64_t card_addr,
                    uint64_t mmap_offset)
{
	b->base.dev = &d->base;
	b->base.size = size;
	b->base.card_addr = card_addr;
	b->base.map_fd = d->fd;
	b->base.map_offset = mmap_offset;
	b->base.map = NULL;
}

static int drm_bo_create(struct kvfpga_device *dev, uint64_t size, uint32_t flags,
                         struct kvfpga_bo **out)
{
	struct drm_device *d = to_drm(dev);
	struct drm_kvfpga_bo_create create = { .size = size, .flags = flags };
	struct drm_bo *b = calloc(1, sizeof(*b));
	struct drm_handle_ref *ref = calloc(1, sizeof(*ref));
	int ret = -ENOMEM;

	if (!b || !ref)
		goto err_free;
	ret = ioctl_errno(d->fd, DRM_IOCTL_KVFPGA_BO_CREATE, &create);
	if (ret)
		goto err_free;
	ref->handle = create.handle;
	ref->refs = 1;
	fill_bo(b, d, create.size, create.card_addr, create.mmap_offset);
	b->ref = ref;
	pthread_mutex_lock(&d->lock);
	link_handle(d, ref);
	pthread_mutex_unlock(&d->lock);
	*out = &b->base;
	return 0;

err_free:
	free(ref);
	free(b);
	return ret;
}

static int drm_bo_import(struct kvfpga_device *dev, int fd, struct kvfpga_bo **out)
{
	struct drm_device *d = to_drm(dev);
	struct drm_kvfpga_bo_info bo_info = { 0 };
	struct drm_bo *b = calloc(1, sizeof(*b));
	struct drm_handle_ref *ref, *new_ref = calloc(1, sizeof(*new_ref));
	uint32_t handle;
	int ret = -ENOMEM;

	if (!b || !new_ref)
		goto err_free;
	/* Under the lock so no release can close the handle between lookup and use. */
	pthread_mutex_lock(&d->lock);
	if (drmPrimeFDToHandle(d->fd, fd, &handle)) {
		ret = -errno;
		goto err_unlock;
	}
	ref = find_handle(d, handle);
	bo_info.handle = handle;
	ret = ioctl_errno(d->fd, DRM_IOCTL_KVFPGA_BO_INFO, &bo_info);
	if (ret) {
		if (!ref)
			drmCloseBufferHandle(d->fd, handle);
		goto err_unlock;
	}
	if (ref) {
		ref->refs++;
		free(new_ref);
	} else {
		ref = new_ref;
		ref->handle = handle;
		ref->refs = 1;
		link_handle(d, ref);
	}
	pthread_mutex_unlock(&d->lock);
	fill_bo(b, d, bo_info.size, bo_info.card_addr, bo_info.mmap_offset);
	b->ref = ref;
	*out = &b->base;
	return 0;

err_unlock:
	pthread_mutex_unlock(&d->lock);
err_free:
	free(new_ref);
	free(b);
	return ret;
}

static int drm_bo_export(struct kvfpga_bo *bo, int *fd)
{
	struct drm_device *d = to_drm(bo->dev);
	int prime_fd;

	if (drmPrimeHandleToFD(d->fd, to_drm_bo(bo)->ref->handle, DRM_CLOEXEC | DRM_RDWR,
	                       &prime_fd))
		return -errno;
	*fd = prime_fd;
	return 0;
}

static void drm_bo_release(struct kvfpga_bo *bo)
{
	struct drm_device *d = to_drm(bo->dev);
	struct drm_bo *b = to_drm_bo(bo);
	struct drm_handle_ref *ref = b->ref;

	pthread_mutex_lock(&d->lock);
	if (--ref->refs == 0) {
		unlink_handle(d, ref);
		drmCloseBufferHandle(d->fd, ref->handle);
		free(ref);
	}
	pthread_mutex_unlock(&d->lock);
	free(b);
}

static const struct kvfpga_device_ops drm_ops = {
	.destroy = drm_destroy,
	.query = drm_query,
	.bo_create = drm_bo_create,
	.bo_import = drm_bo_import,
	.bo_export = drm_bo_export,
	.bo_release = drm_bo_release,
};

int kvfpga_drm_open(const char *node, struct kvfpga_device **out)
{
	struct drm_device *d;
	struct stat st;
	uint64_t abi;
	int fd, ret;

	if (strlen(node) >= sizeof(d->node))
		return -EINVAL;
	/* Only character devices: opening a FIFO would block. */
	if (stat(node, &st))
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return -ENODEV;
	fd = open(node, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = kvfpga_drm_check_driver(fd);
	if (ret)
		goto err_close;
	ret = get_param(fd, KVFPGA_PARAM_ABI_VERSION, &abi);
	if (ret)
		goto err_close;
	if ((abi >> 16) != KVFPGA_ABI_MAJOR) {
		ret = -EPROTO;
		goto err_close;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		ret = -ENOMEM;
		goto err_close;
	}
	ret = pthread_mutex_init(&d->lock, NULL);
	if (ret) {
		free(d);
		ret = -ret;
		goto err_close;
	}
	d->base.ops = &drm_ops;
	d->base.backend = KVFPGA_BACKEND_CARD;
	d->fd = fd;
	kvfpga_copy_string(d->node, sizeof(d->node), node);
	kvfpga_sysfs_pci_slot(st.st_rdev, d->pci_slot, sizeof(d->pci_slot));
	*out = &d->base;
	return 0;

err_close:
	close(fd);
	return ret;
}
