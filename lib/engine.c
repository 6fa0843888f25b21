/* SPDX-License-Identifier: MIT */
/*
 * Attention engine: OpenCL device choice, context, arenas, error text.
 * Programs are in engine_program.c, the disk cache in engine_cache.c, the
 * submissions in attention.c.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine_internal.h"

#define CL_PLATFORM_NOT_FOUND_KHR_ (-1001)

static const struct {
	cl_int status;
	const char *name;
} cl_error_names[] = {
	{ CL_SUCCESS, "CL_SUCCESS" },
	{ CL_DEVICE_NOT_FOUND, "CL_DEVICE_NOT_FOUND" },
	{ CL_DEVICE_NOT_AVAILABLE, "CL_DEVICE_NOT_AVAILABLE" },
	{ CL_COMPILER_NOT_AVAILABLE, "CL_COMPILER_NOT_AVAILABLE" },
	{ CL_MEM_OBJECT_ALLOCATION_FAILURE, "CL_MEM_OBJECT_ALLOCATION_FAILURE" },
	{ CL_OUT_OF_RESOURCES, "CL_OUT_OF_RESOURCES" },
	{ CL_OUT_OF_HOST_MEMORY, "CL_OUT_OF_HOST_MEMORY" },
	{ CL_PROFILING_INFO_NOT_AVAILABLE, "CL_PROFILING_INFO_NOT_AVAILABLE" },
	{ CL_MEM_COPY_OVERLAP, "CL_MEM_COPY_OVERLAP" },
	{ CL_IMAGE_FORMAT_MISMATCH, "CL_IMAGE_FORMAT_MISMATCH" },
	{ CL_IMAGE_FORMAT_NOT_SUPPORTED, "CL_IMAGE_FORMAT_NOT_SUPPORTED" },
	{ CL_BUILD_PROGRAM_FAILURE, "CL_BUILD_PROGRAM_FAILURE" },
	{ CL_MAP_FAILURE, "CL_MAP_FAILURE" },
	{ CL_MISALIGNED_SUB_BUFFER_OFFSET, "CL_MISALIGNED_SUB_BUFFER_OFFSET" },
	{ CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST,
	  "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST" },
	{ CL_COMPILE_PROGRAM_FAILURE, "CL_COMPILE_PROGRAM_FAILURE" },
	{ CL_LINKER_NOT_AVAILABLE, "CL_LINKER_NOT_AVAILABLE" },
	{ CL_LINK_PROGRAM_FAILURE, "CL_LINK_PROGRAM_FAILURE" },
	{ CL_DEVICE_PARTITION_FAILED, "CL_DEVICE_PARTITION_FAILED" },
	{ CL_KERNEL_ARG_INFO_NOT_AVAILABLE, "CL_KERNEL_ARG_INFO_NOT_AVAILABLE" },
	{ CL_INVALID_VALUE, "CL_INVALID_VALUE" },
	{ CL_INVALID_DEVICE_TYPE, "CL_INVALID_DEVICE_TYPE" },
	{ CL_INVALID_PLATFORM, "CL_INVALID_PLATFORM" },
	{ CL_INVALID_DEVICE, "CL_INVALID_DEVICE" },
	{ CL_INVALID_CONTEXT, "CL_INVALID_CONTEXT" },
	{ CL_INVALID_QUEUE_PROPERTIES, "CL_INVALID_QUEUE_PROPERTIES" },
	{ CL_INVALID_COMMAND_QUEUE, "CL_INVALID_COMMAND_QUEUE" },
	{ CL_INVALID_HOST_PTR, "CL_INVALID_HOST_PTR" },
	{ CL_INVALID_MEM_OBJECT, "CL_INVALID_MEM_OBJECT" },
	{ CL_INVALID_IMAGE_FORMAT_DESCRIPTOR, "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR" },
	{ CL_INVALID_IMAGE_SIZE, "CL_INVALID_IMAGE_SIZE" },
	{ CL_INVALID_SAMPLER, "CL_INVALID_SAMPLER" },
	{ CL_INVALID_BINARY, "CL_INVALID_BINARY" },
	{ CL_INVALID_BUILD_OPTIONS, "CL_INVALID_BUILD_OPTIONS" },
	{ CL_INVALID_PROGRAM, "CL_INVALID_PROGRAM" },
	{ CL_INVALID_PROGRAM_EXECUTABLE, "CL_INVALID_PROGRAM_EXECUTABLE" },
	{ CL_INVALID_KERNEL_NAME, "CL_INVALID_KERNEL_NAME" },
	{ CL_INVALID_KERNEL_DEFINITION, "CL_INVALID_KERNEL_DEFINITION" },
	{ CL_INVALID_KERNEL, "CL_INVALID_KERNEL" },
	{ CL_INVALID_ARG_INDEX, "CL_INVALID_ARG_INDEX" },
	{ CL_INVALID_ARG_VALUE, "CL_INVALID_ARG_VALUE" },
	{ CL_INVALID_ARG_SIZE, "CL_INVALID_ARG_SIZE" },
	{ CL_INVALID_KERNEL_ARGS, "CL_INVALID_KERNEL_ARGS" },
	{ CL_INVALID_WORK_DIMENSION, "CL_INVALID_WORK_DIMENSION" },
	{ CL_INVALID_WORK_GROUP_SIZE, "CL_INVALID_WORK_GROUP_SIZE" },
	{ CL_INVALID_WORK_ITEM_SIZE, "CL_INVALID_WORK_ITEM_SIZE" },
	{ CL_INVALID_GLOBAL_OFFSET, "CL_INVALID_GLOBAL_OFFSET" },
	{ CL_INVALID_EVENT_WAIT_LIST, "CL_INVALID_EVENT_WAIT_LIST" },
	{ CL_INVALID_EVENT, "CL_INVALID_EVENT" },
	{ CL_INVALID_OPERATION, "CL_INVALID_OPERATION" },
	{ CL_INVALID_GL_OBJECT, "CL_INVALID_GL_OBJECT" },
	{ CL_INVALID_BUFFER_SIZE, "CL_INVALID_BUFFER_SIZE" },
	{ CL_INVALID_MIP_LEVEL, "CL_INVALID_MIP_LEVEL" },
	{ CL_INVALID_GLOBAL_WORK_SIZE, "CL_INVALID_GLOBAL_WORK_SIZE" },
	{ CL_INVALID_PROPERTY, "CL_INVALID_PROPERTY" },
	{ CL_INVALID_IMAGE_DESCRIPTOR, "CL_INVALID_IMAGE_DESCRIPTOR" },
	{ CL_INVALID_COMPILER_OPTIONS, "CL_INVALID_COMPILER_OPTIONS" },
	{ CL_INVALID_LINKER_OPTIONS, "CL_INVALID_LINKER_OPTIONS" },
	{ CL_INVALID_DEVICE_PARTITION_COUNT, "CL_INVALID_DEVICE_PARTITION_COUNT" },
	{ CL_PLATFORM_NOT_FOUND_KHR_, "CL_PLATFORM_NOT_FOUND_KHR" },
};

const char *kvf_cl_error_name(cl_int status)
{
	for (size_t i = 0; i < sizeof(cl_error_names) / sizeof(cl_error_names[0]); i++) {
		if (cl_error_names[i].status == status)
			return cl_error_names[i].name;
	}
	return "unknown OpenCL error";
}

int kvf_cl_errno(cl_int status)
{
	switch (status) {
	case CL_SUCCESS:
		return 0;
	case CL_DEVICE_NOT_FOUND:
	case CL_DEVICE_NOT_AVAILABLE:
	case CL_PLATFORM_NOT_FOUND_KHR_:
		return -ENODEV;
	case CL_COMPILER_NOT_AVAILABLE:
	case CL_LINKER_NOT_AVAILABLE:
		return -EOPNOTSUPP;
	case CL_MEM_OBJECT_ALLOCATION_FAILURE:
	case CL_OUT_OF_RESOURCES:
	case CL_OUT_OF_HOST_MEMORY:
		return -ENOMEM;
	case CL_BUILD_PROGRAM_FAILURE:
	case CL_COMPILE_PROGRAM_FAILURE:
	case CL_LINK_PROGRAM_FAILURE:
	case CL_INVALID_BINARY:
	case CL_INVALID_PROGRAM_EXECUTABLE:
		return -ENOEXEC;
	case CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST:
		return -EIO;
	case CL_INVALID_BUFFER_SIZE: /* above the device's largest buffer */
		return -E2BIG;
	default:
		/* The CL_INVALID_* codes run from -30 down to -70. */
		if (status <= -30 && status >= -70)
			return -EINVAL;
		return -EIO;
	}
}

int kvf_fail(char *msg, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	if (msg && len) {
		va_start(ap, fmt);
		vsnprintf(msg, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

int kvf_cl_fail(char *msg, size_t len, const char *call, cl_int status, const char *device,
                const char *detail)
{
	return kvf_fail(msg, len, kvf_cl_errno(status), "%s: %s (%d) on %s%s%s", call,
	                kvf_cl_error_name(status), (int)status, device, detail ? ": " : "",
	                detail ? detail : "");
}

void kvf_engine_set_error(struct kvfpga_engine *engine, const char *msg)
{
	pthread_mutex_lock(&engine->lock);
	snprintf(engine->last_error, sizeof(engine->last_error), "%s", msg);
	pthread_mutex_unlock(&engine->lock);
}

/* --- options ------------------------------------------------------------ */

static int copy_string(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		return -EINVAL;
	memcpy(dst, src, n + 1);
	return 0;
}

static int is_terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/*
 * PoCL starts one worker per compute unit; these can raise the count above
 * the CPUs, and worker i >= n would then abort pinning itself to CPU i.
 */
static const char *const pocl_worker_count_vars[] = { "POCL_MAX_PTHREAD_COUNT",
	                                              "POCL_CPU_MAX_CU_COUNT",
	                                              "POCL_MAX_COMPUTE_UNITS" };

int kvfpga_cl_pin_cpu_workers(void)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t allowed;

	if (getenv("POCL_AFFINITY"))
		return 0;
	for (size_t i = 0; i < sizeof(pocl_worker_count_vars) / sizeof(pocl_worker_count_vars[0]);
	     i++) {
		if (getenv(pocl_worker_count_vars[i]))
			return 0;
	}
	if (online < 1 || online > CPU_SETSIZE)
		return 0;
	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		return -errno;
	/* PoCL 3 pins worker i to CPU i, and aborts when that is not allowed. */
	for (long cpu = 0; cpu < online; cpu++) {
		if (!CPU_ISSET(cpu, &allowed))
			return 0;
	}
	if (setenv("POCL_AFFINITY", "1", 0))
		return -errno;
	return 1;
}

int kvfpga_engine_opts_init(struct kvfpga_engine_opts *opts)
{
	struct kvfpga_engine_opts o;
	const char *v;

	if (!opts)
		return -EINVAL;
	memset(&o, 0, sizeof(o));
	o.device_index = -1;

	v = getenv("KVFPGA_OPENCL_DEVICE");
	if (v && *v) {
		size_t i = 0;

		while (v[i] >= '0' && v[i] <= '9')
			i++;
		if (v[i] == '\0') {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(v, &end, 10);
			if (errno || n > INT_MAX)
				return -EINVAL;
			o.device_index = (int)n;
		} else if (copy_string(o.device_name, sizeof(o.device_name), v)) {
			return -EINVAL;
		}
	}
	v = getenv("KVFPGA_OPENCL_BINARY");
	if (v && *v && copy_string(o.binary, sizeof(o.binary), v))
		return -EINVAL;
	v = getenv("KVFPGA_OPENCL_TUNING");
	if (v && *v) {
		if (!strcmp(v, "auto"))
			o.tuning = KVFPGA_TUNING_AUTO;
		else if (!strcmp(v, "cpu"))
			o.tuning = KVFPGA_TUNING_CPU;
		else if (!strcmp(v, "fpga"))
			o.tuning = KVFPGA_TUNING_FPGA;
		else
			return -EINVAL;
	}
	v = getenv("KVFPGA_OPENCL_POISON");
	if (v && *v) {
		if (!strcmp(v, "1"))
			o.poison_outputs = 1;
		else if (strcmp(v, "0"))
			return -EINVAL;
	}
	v = getenv("KVFPGA_OPENCL_CACHE");
	if (v && *v) {
		if (!strcmp(v, "off"))
			o.no_cache = 1;
		else if (copy_string(o.cache_dir, sizeof(o.cache_dir), v))
			return -EINVAL;
	}
	*opts = o;
	return 0;
}

static int opts_valid(const struct kvfpga_engine_opts *o)
{
	return o && o->device_index >= -1 &&
	       is_terminated(o->device_name, sizeof(o->device_name)) &&
	       is_terminated(o->cache_dir, sizeof(o->cache_dir)) &&
	       is_terminated(o->binary, sizeof(o->binary)) &&
	       is_terminated(o->source, sizeof(o->source)) &&
	       (o->no_cache == 0 || o->no_cache == 1);
}

/* --- device enumeration ------------------------------------------------- */

struct cl_dev {
	cl_platform_id platform;
	cl_device_id device;
	int xilinx, intel_fpga;
	char driver_version[128];
	struct kvfpga_cl_device_desc desc;
};

static void get_string(cl_int (*fn)(void *, cl_uint, size_t, void *, size_t *), void *obj,
                       cl_uint param, char *buf, size_t len)
{
	buf[0] = '\0';
	if (fn(obj, param, len, buf, NULL) != CL_SUCCESS)
		buf[0] = '\0';
	buf[len - 1] = '\0';
}

static cl_int platform_info(void *obj, cl_uint param, size_t len, void *buf, size_t *ret)
{
	return clGetPlatformInfo((cl_platform_id)obj, param, len, buf, ret);
}

static cl_int device_info(void *obj, cl_uint param, size_t len, void *buf, size_t *ret)
{
	return clGetDeviceInfo((cl_device_id)obj, param, len, buf, ret);
}

static int contains_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return 1;
	for (; *hay; hay++) {
		if (!strncasecmp(hay, needle, n))
			return 1;
	}
	return 0;
}

/* OpenCL C 1.2 or later ("OpenCL C 1.2 PoCL", "OpenCL C 3.0 ..."). */
static int c_version_ok(const char *v)
{
	int major = 0, minor = 0;

	if (sscanf(v, "OpenCL C %d.%d", &major, &minor) != 2)
		return 0;
	return major > 1 || (major == 1 && minor >= 2);
}

static void describe_usability(struct cl_dev *d, cl_bool available)
{
	struct kvfpga_cl_device_desc *desc = &d->desc;

	desc->usable = 1;
	desc->note[0] = '\0';
	if (!available) {
		desc->usable = 0;
		snprintf(desc->note, sizeof(desc->note), "device reports itself unavailable");
		return;
	}
	if (d->xilinx) {
#if defined(KVFPGA_HAVE_XRT) && KVFPGA_HAVE_XRT
		snprintf(desc->note, sizeof(desc->note),
		         "runs a prebuilt .xclbin (make -C hw xclbin; KVFPGA_OPENCL_BINARY)");
#else
		desc->usable = 0;
		snprintf(desc->note, sizeof(desc->note),
		         "Xilinx platform: this libkvfpga was built without XRT (libxrt-dev)");
#endif
		return;
	}
	if (!desc->compiler) {
		snprintf(desc->note, sizeof(desc->note),
		         "no compiler: runs a prebuilt binary only (make -C hw %s)",
		         d->intel_fpga ? "aocx" : "xclbin|aocx");
		return;
	}
	if (!c_version_ok(desc->c_version)) {
		desc->usable = 0;
		snprintf(desc->note, sizeof(desc->note), "needs OpenCL C 1.2, device has '%s'",
		         desc->c_version);
	}
}

static uint32_t type_flags(cl_device_type t)
{
	uint32_t f = 0;

	if (t & CL_DEVICE_TYPE_CPU)
		f |= KVFPGA_CL_TYPE_CPU;
	if (t & CL_DEVICE_TYPE_GPU)
		f |= KVFPGA_CL_TYPE_GPU;
	if (t & CL_DEVICE_TYPE_ACCELERATOR)
		f |= KVFPGA_CL_TYPE_ACCELERATOR;
	if (!f)
		f = KVFPGA_CL_TYPE_OTHER;
	return f;
}

/* Every device of every platform; *devs is malloc'd (NULL when none). */
static int enumerate(struct cl_dev **devs, size_t *count)
{
	cl_uint n_plat = 0;
	cl_platform_id *plats = NULL;
	struct cl_dev *list = NULL;
	size_t n = 0;
	cl_int st;
	int ret = 0;

	*devs = NULL;
	*count = 0;
	st = clGetPlatformIDs(0, NULL, &n_plat);
	if (st == CL_PLATFORM_NOT_FOUND_KHR_ || (st == CL_SUCCESS && n_plat == 0))
		return 0;
	if (st != CL_SUCCESS)
		return kvf_cl_errno(st);
	plats = calloc(n_plat, sizeof(*plats));
	if (!plats)
		return -ENOMEM;
	st = clGetPlatformIDs(n_plat, plats, NULL);
	if (st != CL_SUCCESS) {
		ret = kvf_cl_errno(st);
		goto out;
	}
	for (cl_uint p = 0; p < n_plat; p++) {
		cl_uint n_dev = 0;
		cl_device_id *ids;
		char pname[128], pvendor[128];
		struct cl_dev *grown;

		st = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n_dev);
		if (st == CL_DEVICE_NOT_FOUND || n_dev == 0)
			continue;
		if (st != CL_SUCCESS) {
			ret = kvf_cl_errno(st);
			goto out;
		}
		ids = calloc(n_dev, sizeof(*ids));
		grown = realloc(list, (n + n_dev) * sizeof(*list));
		if (!ids || !grown) {
			free(ids);
			if (grown)
				list = grown;
			ret = -ENOMEM;
			goto out;
		}
		list = grown;
		st = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, n_dev, ids, NULL);
		if (st != CL_SUCCESS) {
			free(ids);
			ret = kvf_cl_errno(st);
			goto out;
		}
		get_string(platform_info, plats[p], CL_PLATFORM_NAME, pname, sizeof(pname));
		get_string(platform_info, plats[p], CL_PLATFORM_VENDOR, pvendor, sizeof(pvendor));
		for (cl_uint i = 0; i < n_dev; i++) {
			struct cl_dev *d = &list[n];
			cl_device_type t = 0;
			cl_uint cus = 0;
			cl_ulong mem = 0, max_alloc = 0;
			cl_bool compiler = CL_FALSE, available = CL_FALSE;

			memset(d, 0, sizeof(*d));
			d->platform = plats[p];
			d->device = ids[i];
			d->desc.index = (uint32_t)n;
			d->desc.platform_index = p;
			snprintf(d->desc.platform, sizeof(d->desc.platform), "%s", pname);
			get_string(device_info, ids[i], CL_DEVICE_NAME, d->desc.device,
			           sizeof(d->desc.device));
			get_string(device_info, ids[i], CL_DEVICE_VERSION, d->desc.version,
			           sizeof(d->desc.version));
			get_string(device_info, ids[i], CL_DEVICE_OPENCL_C_VERSION,
			           d->desc.c_version, sizeof(d->desc.c_version));
			get_string(device_info, ids[i], CL_DRIVER_VERSION, d->driver_version,
			           sizeof(d->driver_version));
			clGetDeviceInfo(ids[i], CL_DEVICE_TYPE, sizeof(t), &t, NULL);
			clGetDeviceInfo(ids[i], CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(cus), &cus,
			                NULL);
			clGetDeviceInfo(ids[i], CL_DEVICE_GLOBAL_MEM_SIZE, sizeof(mem), &mem, NULL);
			clGetDeviceInfo(ids[i], CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof(max_alloc),
			                &max_alloc, NULL);
			clGetDeviceInfo(ids[i], CL_DEVICE_COMPILER_AVAILABLE, sizeof(compiler),
			                &compiler, NULL);
			clGetDeviceInfo(ids[i], CL_DEVICE_AVAILABLE, sizeof(available), &available,
			                NULL);
			d->desc.type = type_flags(t);
			d->desc.compute_units = cus;
			d->desc.global_mem = mem;
			d->desc.max_alloc = max_alloc;
			d->desc.compiler = compiler == CL_TRUE;
			d->xilinx = contains_nocase(pname, "xilinx") ||
			            contains_nocase(pvendor, "xilinx");
			d->intel_fpga = !d->xilinx && contains_nocase(pname, "fpga");
			describe_usability(d, available);
			n++;
		}
		free(ids);
	}
	*devs = list;
	*count = n;
	list = NULL;
out:
	free(list);
	free(plats);
	return ret;
}

int kvfpga_cl_list_devices(struct kvfpga_cl_device_desc *out, size_t max, size_t *count)
{
	struct cl_dev *devs;
	size_t n;
	int ret;

	if (!count || (max && !out))
		return -EINVAL;
	ret = enumerate(&devs, &n);
	if (ret)
		return ret;
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = devs[i].desc;
	*count = n;
	free(devs);
	return 0;
}

static int pick(const struct cl_dev *devs, size_t n, const struct kvfpga_engine_opts *opts,
                size_t *chosen, char *msg, size_t len)
{
	if (n == 0)
		return kvf_fail(msg, len, -ENODEV,
		                "no OpenCL device found (install an ICD, e.g. pocl-opencl-icd)");
	if (opts->device_index >= 0) {
		const struct cl_dev *d;

		if ((size_t)opts->device_index >= n)
			return kvf_fail(msg, len, -ENODEV, "no OpenCL device %d (%zu found)",
			                opts->device_index, n);
		d = &devs[opts->device_index];
		if (!d->desc.usable)
			return kvf_fail(msg, len, -ENODEV, "OpenCL device %d (%s: %s): %s",
			                opts->device_index, d->desc.platform, d->desc.device,
			                d->desc.note);
		*chosen = (size_t)opts->device_index;
		return 0;
	}
	if (opts->device_name[0]) {
		const struct cl_dev *first_match = NULL;

		for (size_t i = 0; i < n; i++) {
			char full[260];

			snprintf(full, sizeof(full), "%s: %s", devs[i].desc.platform,
			         devs[i].desc.device);
			if (!contains_nocase(full, opts->device_name))
				continue;
			if (devs[i].desc.usable) {
				*chosen = i;
				return 0;
			}
			if (!first_match)
				first_match = &devs[i];
		}
		if (first_match)
			return kvf_fail(msg, len, -ENODEV, "OpenCL device %u (%s: %s): %s",
			                first_match->desc.index, first_match->desc.platform,
			                first_match->desc.device, first_match->desc.note);
		return kvf_fail(msg, len, -ENODEV, "no OpenCL device matches '%s' (%zu found)",
		                opts->device_name, n);
	}
	for (size_t i = 0; i < n; i++) {
		if (devs[i].desc.usable && (devs[i].desc.type & KVFPGA_CL_TYPE_ACCELERATOR)) {
			*chosen = i;
			return 0;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (devs[i].desc.usable) {
			*chosen = i;
			return 0;
		}
	}
	return kvf_fail(msg, len, -ENODEV, "no usable OpenCL device (%zu found; device 0: %s)", n,
	                devs[0].desc.note);
}

int kvfpga_cl_pick_device(const struct kvfpga_engine_opts *opts, uint32_t *index, char *msg,
                          size_t msg_len)
{
	struct cl_dev *devs;
	size_t n, chosen;
	int ret;

	if (!opts_valid(opts) || !index)
		return -EINVAL;
	ret = enumerate(&devs, &n);
	if (ret)
		return kvf_fail(msg, msg_len, ret, "listing OpenCL devices failed");
	ret = pick(devs, n, opts, &chosen, msg, msg_len);
	if (!ret)
		*index = (uint32_t)chosen;
	free(devs);
	return ret;
}

/* --- engine ------------------------------------------------------------- */

static int load_source(struct kvfpga_engine *e, char *msg, size_t len)
{
	if (e->opts.source[0]) {
		unsigned char *data;
		size_t n;
		int ret = kvf_read_file(e->opts.source, 4u << 20, &data, &n);

		if (ret)
			return kvf_fail(msg, len, ret, "kernel source %s: %s", e->opts.source,
			                strerror(-ret));
		e->source = (char *)data;
		e->source_len = n;
		return 0;
	}
	{
		size_t n;
		const char *src = kvf_embedded_source(&n);

		e->source = malloc(n + 1);
		if (!e->source)
			return kvf_fail(msg, len, -ENOMEM, "out of memory");
		memcpy(e->source, src, n + 1);
		e->source_len = n;
	}
	return 0;
}

int kvfpga_engine_create(const struct kvfpga_engine_opts *opts, struct kvfpga_engine **out,
                         char *msg, size_t msg_len)
{
	struct kvfpga_engine *e;
	struct cl_dev *devs = NULL;
	size_t n = 0, chosen = 0;
	cl_context_properties props[3];
	cl_int st;
	int ret;

	if (msg && msg_len)
		msg[0] = '\0';
	if (!opts_valid(opts) || !out)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->opts = *opts;
	ret = pthread_mutex_init(&e->lock, NULL);
	if (ret) {
		free(e);
		return -ret;
	}
	ret = enumerate(&devs, &n);
	if (ret) {
		kvf_fail(msg, msg_len, ret, "listing OpenCL devices failed");
		goto fail;
	}
	ret = pick(devs, n, opts, &chosen, msg, msg_len);
	if (ret)
		goto fail;
	e->platform = devs[chosen].platform;
	e->device = devs[chosen].device;
	e->index = (uint32_t)chosen;
	e->type = devs[chosen].desc.type;
	e->compute_units = devs[chosen].desc.compute_units ? devs[chosen].desc.compute_units : 1;
	e->compiler = devs[chosen].desc.compiler;
	e->xilinx = devs[chosen].xilinx;
	e->intel_fpga = devs[chosen].intel_fpga;
	snprintf(e->platform_name, sizeof(e->platform_name), "%s", devs[chosen].desc.platform);
	snprintf(e->device_name, sizeof(e->device_name), "%s", devs[chosen].desc.device);
	snprintf(e->device_version, sizeof(e->device_version), "%s", devs[chosen].desc.version);
	snprintf(e->driver_version, sizeof(e->driver_version), "%s", devs[chosen].driver_version);

	props[0] = CL_CONTEXT_PLATFORM;
	props[1] = (cl_context_properties)e->platform;
	props[2] = 0;
	e->context = clCreateContext(props, 1, &e->device, NULL, NULL, &st);
	if (!e->context) {
		ret = kvf_cl_fail(msg, msg_len, "clCreateContext", st, e->device_name, NULL);
		goto fail;
	}
	ret = load_source(e, msg, msg_len);
	if (ret)
		goto fail;
	free(devs);
	*out = e;
	return 0;
fail:
	free(devs);
	kvfpga_engine_destroy(e);
	return ret;
}

void kvfpga_engine_destroy(struct kvfpga_engine *engine)
{
	if (!engine)
		return;
	if (engine->context)
		clReleaseContext(engine->context);
	free(engine->source);
	pthread_mutex_destroy(&engine->lock);
	free(engine);
}

int kvfpga_engine_describe(const struct kvfpga_engine *engine, char *buf, size_t len)
{
	const char *kind;
	int n;

	if (!engine || !buf || !len)
		return -EINVAL;
	kind = engine->type & KVFPGA_CL_TYPE_ACCELERATOR ? "accelerator"
	       : engine->type & KVFPGA_CL_TYPE_GPU       ? "GPU"
	       : engine->type & KVFPGA_CL_TYPE_CPU       ? "CPU"
	                                                 : "device";
	n = snprintf(buf, len, "OpenCL device %u: %s: %s (%s, %u compute units)", engine->index,
	             engine->platform_name, engine->device_name, kind, engine->compute_units);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int kvfpga_engine_device_index(const struct kvfpga_engine *engine, uint32_t *index)
{
	if (!engine || !index)
		return -EINVAL;
	*index = engine->index;
	return 0;
}

int kvfpga_engine_last_error(struct kvfpga_engine *engine, char *buf, size_t len)
{
	if (!engine || !buf || !len)
		return -EINVAL;
	pthread_mutex_lock(&engine->lock);
	snprintf(buf, len, "%s", engine->last_error);
	pthread_mutex_unlock(&engine->lock);
	return 0;
}

/* --- arenas ------------------------------------------------------------- */

int kvfpga_kv_arena_register(struct kvfpga_engine *engine, void *base, uint64_t size,
                             struct kvfpga_kv_arena **out)
{
	struct kvfpga_kv_arena *a;
	char msg[KVFPGA_ENGINE_MSG_MAX];
	cl_uint align_bits = 0;
	cl_int st;

	if (!engine || !base || !size || !out || size > SIZE_MAX)
		return -EINVAL;
	/* The device's own alignment rule, and at least a page, so no copy is needed. */
	clGetDeviceInfo(engine->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof(align_bits),
	                &align_bits, NULL);
	if ((uintptr_t)base % 4096 || (align_bits >= 8 && (uintptr_t)base % (align_bits / 8))) {
		kvf_engine_set_error(engine, "arena base is not page aligned");
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->engine = engine;
	a->base = base;
	a->size = size;
	a->mem = clCreateBuffer(engine->context, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR,
	                        (size_t)size, base, &st);
	if (!a->mem) {
		char detail[64];
		int ret;

		snprintf(detail, sizeof(detail), "arena of %llu bytes", (unsigned long long)size);
		ret = kvf_cl_fail(msg, sizeof(msg), "clCreateBuffer", st, engine->device_name,
		                  detail);
		kvf_engine_set_error(engine, msg);
		free(a);
		return ret;
	}
	*out = a;
	return 0;
}

void kvfpga_kv_arena_release(struct kvfpga_kv_arena *arena)
{
	if (!arena)
		return;
	clReleaseMemObject(arena->mem);
	free(arena);
}
