// SPDX-License-Identifier: GPL-2.0-only
/*
 * kvfpga: module, PCI probe/remove and the DRM driver.
 *
 * On Linux >= 6.2 the card is a compute accelerator (/dev/accel/accelN); on
 * 6.1 a render node (/dev/dri/renderDN).  Everything else is the same.
 */
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/drm_ioctl.h>
#include <drm/drm_managed.h>
#include <drm/drm_prime.h>
#include <drm/drm_print.h>

#include <uapi/drm/kvfpga_accel.h>
#include "kvfpga_drv.h"
#if KVFPGA_ACCEL
#include <drm/drm_accel.h>
#endif

/*
 * The card's shell presents itself as a Xilinx device with its own device
 * id ("KV"), not one of the PCIe IP's defaults such as 9048, which AMD's
 * xdma driver claims too.  Other ids (the QEMU ivshmem stand-in of the test
 * rig, a board with another id) bind at runtime through new_id in sysfs.
 */
#define KVFPGA_PCI_VENDOR	PCI_VENDOR_ID_XILINX
#define KVFPGA_PCI_DEVICE	0x4b56

static int kvfpga_open(struct drm_device *drm, struct drm_file *file)
{
	struct kvfpga_device *kdev = to_kvfpga_dev(drm);
	struct kvfpga_file *kfile;
	int idx;

	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;
	kfile = kzalloc(sizeof(*kfile), GFP_KERNEL);
	if (!kfile) {
		drm_dev_exit(idx);
		return -ENOMEM;
	}
	kfile->client_id = atomic64_inc_return(&kdev->client_ids);
	file->driver_priv = kfile;
	drm_dev_exit(idx);
	return 0;
}

static void kvfpga_postclose(struct drm_device *drm, struct drm_file *file)
{
	kfree(file->driver_priv);
}

static const struct drm_ioctl_desc kvfpga_ioctls[] = {
	DRM_IOCTL_DEF_DRV(KVFPGA_GET_PARAM, kvfpga_ioctl_get_param, DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(KVFPGA_GET_INFO, kvfpga_ioctl_get_info, DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(KVFPGA_BO_CREATE, kvfpga_ioctl_bo_create, DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(KVFPGA_BO_INFO, kvfpga_ioctl_bo_info, DRM_RENDER_ALLOW),
};

#if KVFPGA_ACCEL
/*
 * The core holds only render clients to DRM_RENDER_ALLOW: on an accel node
 * its legacy and master ioctls stay reachable, and some of them use the
 * file's DRM master, which an accel file never has (on Debian's 6.12,
 * GET_UNIQUE and GET_MAGIC oops; found by tests/vm/t_fuzz.c).  Let through
 * only the core ioctls a render node allows a driver without syncobjs.
 */
static bool kvfpga_accel_ioctl_allowed(unsigned int cmd)
{
	unsigned int nr = DRM_IOCTL_NR(cmd);

	if (nr >= DRM_COMMAND_BASE && nr < DRM_COMMAND_END)
		return true;
	switch (nr) {
	case DRM_IOCTL_NR(DRM_IOCTL_VERSION):
	case DRM_IOCTL_NR(DRM_IOCTL_GET_CAP):
	case DRM_IOCTL_NR(DRM_IOCTL_GEM_CLOSE):
	case DRM_IOCTL_NR(DRM_IOCTL_PRIME_HANDLE_TO_FD):
	case DRM_IOCTL_NR(DRM_IOCTL_PRIME_FD_TO_HANDLE):
		return true;
	default:
		return false;
	}
}

static long kvfpga_accel_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	if (!kvfpga_accel_ioctl_allowed(cmd))
		return -EACCES;
	return drm_ioctl(filp, cmd, arg);
}

#ifdef CONFIG_COMPAT
static long kvfpga_accel_compat_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	if (!kvfpga_accel_ioctl_allowed(cmd))
		return -EACCES;
	return drm_compat_ioctl(filp, cmd, arg);
}
#else
#define kvfpga_accel_compat_ioctl NULL
#endif

/* DRM_ACCEL_FOPS with the ioctls filtered and the core's fdinfo. */
static const struct file_operations kvfpga_fops = {
	.owner = THIS_MODULE,
	.open = accel_open,
	.release = drm_release,
	.unlocked_ioctl = kvfpga_accel_ioctl,
	.compat_ioctl = kvfpga_accel_compat_ioctl,
	.poll = drm_poll,
	.read = drm_read,
	.llseek = noop_llseek,
	.mmap = drm_gem_mmap,
#ifdef FOP_UNSIGNED_OFFSET
	.fop_flags = FOP_UNSIGNED_OFFSET,
#endif
#if KVFPGA_CORE_FDINFO
	.show_fdinfo = drm_show_fdinfo,
#else
	.show_fdinfo = kvfpga_show_fdinfo, /* 6.2-6.4: accel without the core's fdinfo */
#endif
};
#else
static const struct file_operations kvfpga_fops = {
	.owner = THIS_MODULE,
	DRM_GEM_FOPS,
	.show_fdinfo = kvfpga_show_fdinfo,
};
#endif

static const struct drm_driver kvfpga_driver = {
#if KVFPGA_ACCEL
	.driver_features = DRIVER_GEM | DRIVER_COMPUTE_ACCEL,
#else
	.driver_features = DRIVER_GEM | DRIVER_RENDER,
#endif
	.open = kvfpga_open,
	.postclose = kvfpga_postclose,
#if KVFPGA_CORE_FDINFO
	.show_fdinfo = kvfpga_show_fdinfo,
#endif
#if KVFPGA_EXPLICIT_PRIME
	.prime_handle_to_fd = drm_gem_prime_handle_to_fd,
	.prime_fd_to_handle = drm_gem_prime_fd_to_handle,
	.gem_prime_mmap = drm_gem_prime_mmap,
#endif
	.ioctls = kvfpga_ioctls,
	.num_ioctls = ARRAY_SIZE(kvfpga_ioctls),
	.fops = &kvfpga_fops,
	.name = DRIVER_NAME,
	.desc = DRIVER_DESC,
#if KVFPGA_DRIVER_DATE
	.date = DRIVER_DATE,
#endif
	.major = DRIVER_MAJOR,
	.minor = DRIVER_MINOR,
};

static int kvfpga_map_bar(struct kvfpga_device *kdev)
{
	struct pci_dev *pdev = kdev->pdev;
	struct device *dev = &pdev->dev;

	if (!(pci_resource_flags(pdev, KVFPGA_MEM_BAR) & IORESOURCE_MEM)) {
		dev_err(dev, "BAR%d is not a memory BAR\n", KVFPGA_MEM_BAR);
		return -ENODEV;
	}
	kdev->mem_phys = pci_resource_start(pdev, KVFPGA_MEM_BAR);
	kdev->bar_len = pci_resource_len(pdev, KVFPGA_MEM_BAR);
	if (kdev->bar_len < KVFPGA_DESC_MIN_MEM) {
		dev_err(dev, "BAR%d is only %llu bytes\n", KVFPGA_MEM_BAR, (u64)kdev->bar_len);
		return -ENODEV;
	}
	if (!devm_request_mem_region(dev, kdev->mem_phys, kdev->bar_len, DRIVER_NAME)) {
		dev_err(dev, "BAR%d is in use\n", KVFPGA_MEM_BAR);
		return -EBUSY;
	}
	kdev->mem = devm_ioremap_wc(dev, kdev->mem_phys, kdev->bar_len);
	if (!kdev->mem)
		return -ENOMEM;
	return 0;
}

static int kvfpga_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct kvfpga_device *kdev;
	int ret;

	kdev = devm_drm_dev_alloc(&pdev->dev, &kvfpga_driver, struct kvfpga_device, drm);
	if (IS_ERR(kdev))
		return PTR_ERR(kdev);
	kdev->pdev = pdev;
	atomic_set(&kdev->fail_nth, 0);
	atomic64_set(&kdev->faults_injected, 0);
	atomic64_set(&kdev->client_ids, 0);
	pci_set_drvdata(pdev, &kdev->drm);

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = kvfpga_map_bar(kdev);
	if (ret)
		return ret;
	ret = kvfpga_card_read_desc(kdev);
	if (ret)
		return ret;
	ret = kvfpga_mem_init(kdev);
	if (ret)
		return ret;

	ret = drm_dev_register(&kdev->drm, 0);
	if (ret)
		return ret;
	ret = kvfpga_sysfs_init(kdev);
	if (ret) {
		drm_dev_unplug(&kdev->drm);
		return ret;
	}
	kvfpga_debugfs_init(kdev);
	return 0;
}

static void kvfpga_remove(struct pci_dev *pdev)
{
	struct drm_device *drm = pci_get_drvdata(pdev);

	/*
	 * Unregisters the node, waits out every ioctl and fault in flight and
	 * zaps all mappings; open files and buffers live on until released.
	 */
	drm_dev_unplug(drm);
}

static const struct pci_device_id kvfpga_pci_ids[] = {
	{ PCI_DEVICE(KVFPGA_PCI_VENDOR, KVFPGA_PCI_DEVICE), .driver_data = 0 },
	{ }
};
MODULE_DEVICE_TABLE(pci, kvfpga_pci_ids);

static struct pci_driver kvfpga_pci_driver = {
	.name = DRIVER_NAME,
	.id_table = kvfpga_pci_ids,
	.probe = kvfpga_probe,
	.remove = kvfpga_remove,
};
module_pci_driver(kvfpga_pci_driver);

MODULE_AUTHOR("The kvfpga authors");
MODULE_DESCRIPTION("kvfpga: " DRIVER_DESC);
MODULE_LICENSE("GPL");
MODULE_VERSION(KVFPGA_VERSION);
