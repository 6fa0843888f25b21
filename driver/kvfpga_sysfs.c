// SPDX-License-Identifier: GPL-2.0-only
/* Card state in sysfs, on the PCI device: /sys/bus/pci/devices/<slot>/. */
#include <linux/device.h>
#include <linux/sysfs.h>
#include <drm/drm_drv.h>

#include "kvfpga_drv.h"

static struct kvfpga_device *kvfpga_from_dev(struct device *dev)
{
	struct drm_device *drm = dev_get_drvdata(dev);

	return to_kvfpga_dev(drm);
}

static ssize_t mem_total_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", kvfpga_from_dev(dev)->mm.total);
}
static DEVICE_ATTR_RO(mem_total);

static ssize_t mem_used_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	u64 used;
	u32 count;

	kvfpga_mem_stats(kvfpga_from_dev(dev), &used, &count);
	return sysfs_emit(buf, "%llu\n", used);
}
static DEVICE_ATTR_RO(mem_used);

static ssize_t bo_count_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	u64 used;
	u32 count;

	kvfpga_mem_stats(kvfpga_from_dev(dev), &used, &count);
	return sysfs_emit(buf, "%u\n", count);
}
static DEVICE_ATTR_RO(bo_count);

static ssize_t card_name_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", kvfpga_from_dev(dev)->card.name);
}
static DEVICE_ATTR_RO(card_name);

static ssize_t card_serial_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", kvfpga_from_dev(dev)->card.serial);
}
static DEVICE_ATTR_RO(card_serial);

static ssize_t mem_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", kvfpga_from_dev(dev)->card.mem_size);
}
static DEVICE_ATTR_RO(mem_size);

static struct attribute *kvfpga_attrs[] = {
	&dev_attr_mem_total.attr,
	&dev_attr_mem_used.attr,
	&dev_attr_mem_size.attr,
	&dev_attr_bo_count.attr,
	&dev_attr_card_name.attr,
	&dev_attr_card_serial.attr,
	NULL,
};

static const struct attribute_group kvfpga_attr_group = {
	.name = "kvfpga",
	.attrs = kvfpga_attrs,
};

int kvfpga_sysfs_init(struct kvfpga_device *kdev)
{
	return devm_device_add_group(&kdev->pdev->dev, &kvfpga_attr_group);
}
