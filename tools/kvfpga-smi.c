// SPDX-License-Identifier: MIT
/*
 * kvfpga-smi: the kvfpga cards of this machine, who uses them, and the
 * OpenCL devices libkvfpga would run the attention kernels on.
 *
 * Cards come from kvfpga_enumerate(); their name, serial and memory from
 * sysfs (/sys/bus/pci/devices/<slot>/kvfpga/, readable by anyone); the
 * driver's ABI version from the uapi (GET_PARAM, needs access to the node).
 * Users are found the way gputop and nvtop find them: every
 * /proc/<pid>/fd/<n> that is the card's device node, with the per-client
 * memory of /proc/<pid>/fdinfo/<n> (drm-total-card, drm-shared-card, one
 * count per drm-client-id).  Only root sees every process.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <xf86drm.h>

#include "kvfpga/engine.h"
#include "kvfpga/kvfpga.h"
#include "kvfpga_accel.h"

#define PROG "kvfpga-smi"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: " PROG " [--json] [--loop SECONDS [--count N]] [--no-opencl]\n"
	        "List the kvfpga cards, the processes using each (with their card memory)\n"
	        "and the OpenCL devices libkvfpga would use.\n"
	        "\n"
	        "  -j, --json           machine-readable output: one JSON object per report\n"
	        "                       (one line each with --loop)\n"
	        "  -l, --loop SECONDS   report again every SECONDS (0.1 to 86400) until\n"
	        "                       interrupted\n"
	        "  -c, --count N        with --loop: stop after N reports\n"
	        "  -n, --no-opencl      do not list OpenCL devices\n"
	        "  -V, --version        print the version and exit\n"
	        "  -h, --help           this text\n"
	        "\n"
	        "Processes are found through /proc/<pid>/fd and /proc/<pid>/fdinfo: only root\n"
	        "sees those of other users.  KVFPGA_OPENCL_DEVICE selects the OpenCL device as\n"
	        "for every libkvfpga program.\n");
}

/* ---- data ---------------------------------------------------------------- */

/* A number read from sysfs; have is false when the file was missing or bad. */
struct opt_u64 {
	bool have;
	uint64_t v;
};

/* One DRM client (an open file of a card) seen in one process. */
struct client {
	size_t card;
	pid_t pid;
	uint64_t client_id; /* drm-client-id, or a unique stand-in when absent */
	uint64_t total;     /* bytes, drm-total-card */
	uint64_t shared;    /* bytes, drm-shared-card */
};

/* What one process holds on one card. */
struct proc_use {
	pid_t pid;
	char comm[64];
	uint32_t clients;
	uint64_t total, shared;
};

struct card {
	struct kvfpga_card_entry entry;
	bool have_rdev;
	dev_t rdev;
	char name[KVFPGA_NAME_LEN], serial[KVFPGA_NAME_LEN];
	struct opt_u64 mem_size, mem_total, mem_used, bo_count;
	int abi_err; /* 0: abi_major/minor valid; else a negative errno */
	uint32_t abi_major, abi_minor;
	struct proc_use *procs;
	size_t n_procs;
};

struct snapshot {
	time_t when;
	char driver_version[32]; /* /sys/module/kvfpga/version, "" if unknown */
	struct card *cards;
	size_t n_cards;
	bool all_visible; /* every process's fds could be read */
};

struct cl_report {
	bool listed;
	int list_err;
	struct kvfpga_cl_device_desc *devs;
	size_t n_devs;
	int pick_err;
	uint32_t picked;
	char pick_msg[KVFPGA_ENGINE_MSG_MAX];
};

/* ---- sysfs and procfs ---------------------------------------------------- */

/* First line of a small file, without its newline.  -errno on failure. */
static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int ret = 0;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f))
		ret = ferror(f) ? -EIO : -ENODATA;
	fclose(f);
	if (!ret)
		buf[strcspn(buf, "\n")] = '\0';
	return ret;
}

static struct opt_u64 read_u64(const char *dir, const char *attr)
{
	struct opt_u64 r = { false, 0 };
	char path[256], line[64], *end;
	unsigned long long v;

	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	if (read_line(path, line, sizeof(line)))
		return r;
	errno = 0;
	v = strtoull(line, &end, 10);
	if (errno || end == line || *end)
		return r;
	r.have = true;
	r.v = v;
	return r;
}

static void read_card_sysfs(struct card *c)
{
	char dir[128], path[192];

	if (!c->entry.pci_slot[0])
		return;
	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/kvfpga", c->entry.pci_slot);
	snprintf(path, sizeof(path), "%s/card_name", dir);
	if (read_line(path, c->name, sizeof(c->name)))
		c->name[0] = '\0';
	snprintf(path, sizeof(path), "%s/card_serial", dir);
	if (read_line(path, c->serial, sizeof(c->serial)))
		c->serial[0] = '\0';
	c->mem_size = read_u64(dir, "mem_size");
	c->mem_total = read_u64(dir, "mem_total");
	c->mem_used = read_u64(dir, "mem_used");
	c->bo_count = read_u64(dir, "bo_count");
}

/* The ABI version through the uapi; the fd is closed again at once. */
static void read_card_abi(struct card *c)
{
	struct drm_kvfpga_get_param gp;
	int fd = open(c->entry.node, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		c->abi_err = -errno;
		return;
	}
	memset(&gp, 0, sizeof(gp));
	gp.param = KVFPGA_PARAM_ABI_VERSION;
	if (drmIoctl(fd, DRM_IOCTL_KVFPGA_GET_PARAM, &gp)) {
		c->abi_err = -errno;
	} else {
		c->abi_err = 0;
		c->abi_major = (uint32_t)(gp.value >> 16);
		c->abi_minor = (uint32_t)(gp.value & 0xffff);
	}
	close(fd);
}

/* "4096 KiB" (drm-usage-stats: a number, optionally KiB or MiB) in bytes. */
static bool parse_mem(const char *s, uint64_t *bytes)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	while (*end == ' ' || *end == '\t')
		end++;
	if (!strncmp(end, "KiB", 3))
		v <<= 10;
	else if (!strncmp(end, "MiB", 3))
		v <<= 20;
	else if (*end && *end != '\n')
		return false;
	*bytes = v;
	return true;
}

/*
 * The kvfpga keys of one fdinfo file.  False when it is not a kvfpga DRM
 * client (it says another drm-driver) or cannot be read.
 */
static bool read_fdinfo(const char *path, struct client *cl, bool *have_id)
{
	FILE *f = fopen(path, "re");
	char line[256];
	bool other_driver = false;

	if (!f)
		return false;
	*have_id = false;
	while (fgets(line, sizeof(line), f)) {
		char *val = strchr(line, ':');

		if (!val)
			continue;
		*val++ = '\0';
		while (*val == ' ' || *val == '\t')
			val++;
		val[strcspn(val, "\n")] = '\0';
		if (!strcmp(line, "drm-driver")) {
			other_driver = strcmp(val, "kvfpga") != 0;
		} else if (!strcmp(line, "drm-client-id")) {
			char *end;

			errno = 0;
			cl->client_id = strtoull(val, &end, 10);
			*have_id = !errno && end != val;
		} else if (!strcmp(line, "drm-total-card")) {
			if (!parse_mem(val, &cl->total))
				cl->total = 0;
		} else if (!strcmp(line, "drm-shared-card")) {
			if (!parse_mem(val, &cl->shared))
				cl->shared = 0;
		}
	}
	fclose(f);
	return !other_driver;
}

struct client_list {
	struct client *items;
	size_t count, cap;
};

static int client_add(struct client_list *l, const struct client *c)
{
	if (l->count == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct client *grown = realloc(l->items, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		l->items = grown;
		l->cap = cap;
	}
	l->items[l->count++] = *c;
	return 0;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
	}
	return true;
}

/* The fds of @pid that are one of @cards' nodes.  -ENOMEM only. */
static int scan_process(pid_t pid, const struct card *cards, size_t n_cards,
                        struct client_list *out, bool *all_visible, uint64_t *stand_in_id)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d) {
		if (errno == EACCES || errno == EPERM)
			*all_visible = false;
		return 0; /* gone, or not ours to look at */
	}
	while ((de = readdir(d))) {
		char fd_path[96], info_path[96];
		struct client cl;
		struct stat st;
		bool have_id;
		size_t k;

		long fd;

		if (!all_digits(de->d_name) || strlen(de->d_name) > 10)
			continue;
		fd = strtol(de->d_name, NULL, 10);
		snprintf(fd_path, sizeof(fd_path), "/proc/%d/fd/%ld", (int)pid, fd);
		if (stat(fd_path, &st) || !S_ISCHR(st.st_mode))
			continue;
		for (k = 0; k < n_cards; k++) {
			if (cards[k].have_rdev && cards[k].rdev == st.st_rdev)
				break;
		}
		if (k == n_cards)
			continue;
		memset(&cl, 0, sizeof(cl));
		snprintf(info_path, sizeof(info_path), "/proc/%d/fdinfo/%ld", (int)pid, fd);
		if (!read_fdinfo(info_path, &cl, &have_id))
			continue;
		cl.card = k;
		cl.pid = pid;
		if (!have_id)
			cl.client_id = (*stand_in_id)++; /* cannot tell dups apart: count each */
		if (client_add(out, &cl)) {
			closedir(d);
			return -ENOMEM;
		}
	}
	closedir(d);
	return 0;
}

static int client_cmp(const void *a, const void *b)
{
	const struct client *x = a, *y = b;

	if (x->card != y->card)
		return x->card < y->card ? -1 : 1;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	if (x->client_id != y->client_id)
		return x->client_id < y->client_id ? -1 : 1;
	return 0;
}

static void read_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (read_line(path, buf, len))
		snprintf(buf, len, "?");
}

/* Sorted clients -> per card, per process totals (a client counted once per process). */
static int group_clients(struct client_list *l, struct card *cards)
{
	size_t i = 0;

	qsort(l->items, l->count, sizeof(*l->items), client_cmp);
	while (i < l->count) {
		const struct client *first = &l->items[i];
		struct card *c = &cards[first->card];
		struct proc_use *grown, *p;

		grown = realloc(c->procs, (c->n_procs + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		c->procs = grown;
		p = &c->procs[c->n_procs++];
		memset(p, 0, sizeof(*p));
		p->pid = first->pid;
		read_comm(p->pid, p->comm, sizeof(p->comm));
		for (; i < l->count && l->items[i].card == first->card &&
		       l->items[i].pid == first->pid;
		     i++) {
			if (i > 0 && client_cmp(&l->items[i - 1], &l->items[i]) == 0)
				continue; /* the same open file through another fd */
			p->clients++;
			p->total += l->items[i].total;
			p->shared += l->items[i].shared;
		}
	}
	return 0;
}

static int scan_processes(struct snapshot *s)
{
	struct client_list clients = { NULL, 0, 0 };
	uint64_t stand_in_id = UINT64_MAX / 2;
	pid_t self = getpid();
	struct dirent *de;
	DIR *proc;
	int ret = 0;

	s->all_visible = true;
	proc = opendir("/proc");
	if (!proc)
		return -errno;
	while (!ret && (de = readdir(proc))) {
		if (!all_digits(de->d_name))
			continue;
		pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);

		if (pid == self)
			continue;
		ret = scan_process(pid, s->cards, s->n_cards, &clients, &s->all_visible,
		                   &stand_in_id);
	}
	closedir(proc);
	if (!ret)
		ret = group_clients(&clients, s->cards);
	free(clients.items);
	return ret;
}

static void snapshot_free(struct snapshot *s)
{
	for (size_t i = 0; i < s->n_cards; i++)
		free(s->cards[i].procs);
	free(s->cards);
	memset(s, 0, sizeof(*s));
}

/* Everything but OpenCL, now.  0 or a negative errno. */
static int snapshot_take(struct snapshot *s)
{
	struct kvfpga_card_entry *entries = NULL;
	size_t count = 0, found = 0;
	int ret;

	memset(s, 0, sizeof(*s));
	s->when = time(NULL);
	if (read_line("/sys/module/kvfpga/version", s->driver_version, sizeof(s->driver_version)))
		s->driver_version[0] = '\0';
	ret = kvfpga_enumerate(NULL, 0, &count);
	if (ret)
		return ret;
	if (count) {
		entries = calloc(count, sizeof(*entries));
		if (!entries)
			return -ENOMEM;
		ret = kvfpga_enumerate(entries, count, &found);
		if (ret) {
			free(entries);
			return ret;
		}
		if (found < count) /* cards may go between the two scans */
			count = found;
	}
	s->cards = calloc(count ? count : 1, sizeof(*s->cards));
	if (!s->cards) {
		free(entries);
		return -ENOMEM;
	}
	s->n_cards = count;
	for (size_t i = 0; i < count; i++) {
		struct card *c = &s->cards[i];
		struct stat st;

		c->entry = entries[i];
		if (!stat(c->entry.node, &st) && S_ISCHR(st.st_mode)) {
			c->have_rdev = true;
			c->rdev = st.st_rdev;
		}
		read_card_sysfs(c);
		read_card_abi(c);
	}
	free(entries);
	ret = scan_processes(s);
	if (ret)
		snapshot_free(s);
	return ret;
}

static void cl_report_take(struct cl_report *r)
{
	struct kvfpga_engine_opts opts;
	size_t n = 0;

	memset(r, 0, sizeof(*r));
	r->listed = true;
	r->list_err = kvfpga_cl_list_devices(NULL, 0, &n);
	if (!r->list_err && n) {
		r->devs = calloc(n, sizeof(*r->devs));
		if (!r->devs)
			r->list_err = -ENOMEM;
		else
			r->list_err = kvfpga_cl_list_devices(r->devs, n, &r->n_devs);
		if (!r->list_err && r->n_devs > n)
			r->n_devs = n; /* a device appeared between the calls */
	}
	r->pick_err = kvfpga_engine_opts_init(&opts);
	if (r->pick_err)
		snprintf(r->pick_msg, sizeof(r->pick_msg),
		         "bad KVFPGA_OPENCL_DEVICE, KVFPGA_OPENCL_BINARY or KVFPGA_OPENCL_CACHE");
	else
		r->pick_err =
		        kvfpga_cl_pick_device(&opts, &r->picked, r->pick_msg, sizeof(r->pick_msg));
}

/* ---- text output ------------------------------------------------------- */

static const char *human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

static const char *opt_human(struct opt_u64 o, char *buf, size_t len)
{
	return o.have ? human(o.v, buf, len) : "-";
}

static const char *type_name(uint32_t type)
{
	if (type & KVFPGA_CL_TYPE_ACCELERATOR)
		return "accel";
	if (type & KVFPGA_CL_TYPE_GPU)
		return "gpu";
	if (type & KVFPGA_CL_TYPE_CPU)
		return "cpu";
	return "other";
}

static void print_text(const struct snapshot *s, const struct cl_report *cl)
{
	char when[64], a[32], b[32], c[32];
	struct tm tm;

	localtime_r(&s->when, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	printf(PROG " %d.%d.%d  %s  driver %s\n", KVFPGA_VERSION_MAJOR, KVFPGA_VERSION_MINOR,
	       KVFPGA_VERSION_PATCH, when, s->driver_version[0] ? s->driver_version : "not loaded");
	printf("\n");
	if (!s->n_cards) {
		printf("No kvfpga card found.\n");
	} else {
		printf("%-4s %-13s %-19s %-16s %-12s %-5s %-11s %-11s %-11s %s\n", "CARD", "SLOT",
		       "NODE", "NAME", "SERIAL", "ABI", "USED", "TOTAL", "SIZE", "BUFFERS");
		for (size_t i = 0; i < s->n_cards; i++) {
			const struct card *k = &s->cards[i];
			char abi[16], bos[24];

			if (k->abi_err)
				snprintf(abi, sizeof(abi), "-");
			else
				snprintf(abi, sizeof(abi), "%u.%u", k->abi_major, k->abi_minor);
			if (k->bo_count.have)
				snprintf(bos, sizeof(bos), "%" PRIu64, k->bo_count.v);
			else
				snprintf(bos, sizeof(bos), "-");
			printf("%-4zu %-13s %-19s %-16s %-12s %-5s %-11s %-11s %-11s %s\n", i,
			       k->entry.pci_slot[0] ? k->entry.pci_slot : "-", k->entry.node,
			       k->name[0] ? k->name : "-", k->serial[0] ? k->serial : "-", abi,
			       opt_human(k->mem_used, a, sizeof(a)),
			       opt_human(k->mem_total, b, sizeof(b)),
			       opt_human(k->mem_size, c, sizeof(c)), bos);
			if (k->abi_err)
				printf("     ABI version unknown: %s: %s\n", k->entry.node,
				       strerror(-k->abi_err));
		}
	}

	printf("\n%-4s %-8s %-16s %-8s %-11s %s\n", "CARD", "PID", "PROCESS", "CLIENTS", "CARD MEM",
	       "SHARED");
	size_t shown = 0;
	for (size_t i = 0; i < s->n_cards; i++) {
		for (size_t j = 0; j < s->cards[i].n_procs; j++) {
			const struct proc_use *p = &s->cards[i].procs[j];

			printf("%-4zu %-8d %-16s %-8u %-11s %s\n", i, (int)p->pid, p->comm,
			       p->clients, human(p->total, a, sizeof(a)),
			       human(p->shared, b, sizeof(b)));
			shown++;
		}
	}
	if (!shown)
		printf("(no process uses a kvfpga card)\n");
	if (!s->all_visible)
		printf("(only your own processes are shown: run as root to see all)\n");

	if (!cl)
		return;
	printf("\n");
	if (cl->list_err) {
		printf("OpenCL devices: cannot list them: %s\n", kvfpga_strerror(cl->list_err));
		return;
	}
	printf("%-3s %-3s %-6s %-4s %-11s %s\n", "", "#", "TYPE", "CU", "MEMORY",
	       "OPENCL PLATFORM: DEVICE");
	for (size_t i = 0; i < cl->n_devs; i++) {
		const struct kvfpga_cl_device_desc *d = &cl->devs[i];
		bool picked = !cl->pick_err && cl->picked == d->index;

		printf("%-3s %-3u %-6s %-4u %-11s %s: %s\n", picked ? "=>" : "", d->index,
		       type_name(d->type), d->compute_units, human(d->global_mem, a, sizeof(a)),
		       d->platform, d->device);
		if (d->note[0])
			printf("%-3s %-3s %s%s\n", "", "",
			       d->usable ? "" : "not usable: ", d->note);
	}
	if (!cl->n_devs)
		printf("(no OpenCL device)\n");
	if (cl->pick_err)
		printf("libkvfpga would use no OpenCL device: %s\n",
		       cl->pick_msg[0] ? cl->pick_msg : kvfpga_strerror(cl->pick_err));
	else
		printf("=> the device libkvfpga would use (KVFPGA_OPENCL_DEVICE changes it)\n");
}

/* ---- JSON output ------------------------------------------------------- */

/* json-c objects take ownership of what is added; NULL stays a JSON null. */
static void add(struct json_object *o, const char *key, struct json_object *v)
{
	json_object_object_add(o, key, v);
}

static struct json_object *opt_json(struct opt_u64 o)
{
	return o.have ? json_object_new_uint64(o.v) : NULL;
}

static struct json_object *str_or_null(const char *s)
{
	return s[0] ? json_object_new_string(s) : NULL;
}

static struct json_object *card_json(const struct card *k, size_t index)
{
	struct json_object *o = json_object_new_object();
	struct json_object *procs = json_object_new_array();

	add(o, "index", json_object_new_uint64(index));
	add(o, "pci_slot", str_or_null(k->entry.pci_slot));
	add(o, "node", json_object_new_string(k->entry.node));
	add(o, "driver", json_object_new_string(k->entry.driver));
	add(o, "name", str_or_null(k->name));
	add(o, "serial", str_or_null(k->serial));
	if (k->abi_err) {
		add(o, "abi", NULL);
		add(o, "abi_error", json_object_new_string(strerror(-k->abi_err)));
	} else {
		char abi[24];

		snprintf(abi, sizeof(abi), "%u.%u", k->abi_major, k->abi_minor);
		add(o, "abi", json_object_new_string(abi));
	}
	add(o, "mem_size", opt_json(k->mem_size));
	add(o, "mem_total", opt_json(k->mem_total));
	add(o, "mem_used", opt_json(k->mem_used));
	add(o, "bo_count", opt_json(k->bo_count));
	for (size_t j = 0; j < k->n_procs; j++) {
		const struct proc_use *p = &k->procs[j];
		struct json_object *po = json_object_new_object();

		add(po, "pid", json_object_new_int(p->pid));
		add(po, "name", json_object_new_string(p->comm));
		add(po, "clients", json_object_new_int64(p->clients));
		add(po, "mem_total", json_object_new_uint64(p->total));
		add(po, "mem_shared", json_object_new_uint64(p->shared));
		json_object_array_add(procs, po);
	}
	add(o, "processes", procs);
	return o;
}

static struct json_object *opencl_json(const struct cl_report *cl)
{
	struct json_object *o = json_object_new_object();
	struct json_object *devs = json_object_new_array();

	if (cl->list_err)
		add(o, "error", json_object_new_string(kvfpga_strerror(cl->list_err)));
	for (size_t i = 0; i < cl->n_devs; i++) {
		const struct kvfpga_cl_device_desc *d = &cl->devs[i];
		struct json_object *dj = json_object_new_object();

		add(dj, "index", json_object_new_int64(d->index));
		add(dj, "platform", json_object_new_string(d->platform));
		add(dj, "device", json_object_new_string(d->device));
		add(dj, "type", json_object_new_string(type_name(d->type)));
		add(dj, "version", json_object_new_string(d->version));
		add(dj, "c_version", json_object_new_string(d->c_version));
		add(dj, "compute_units", json_object_new_int64(d->compute_units));
		add(dj, "global_mem", json_object_new_uint64(d->global_mem));
		add(dj, "max_alloc", json_object_new_uint64(d->max_alloc));
		add(dj, "compiler", json_object_new_boolean(d->compiler));
		add(dj, "usable", json_object_new_boolean(d->usable));
		add(dj, "note", str_or_null(d->note));
		json_object_array_add(devs, dj);
	}
	add(o, "devices", devs);
	if (cl->pick_err) {
		add(o, "selected", NULL);
		add(o, "selected_error",
		    json_object_new_string(cl->pick_msg[0] ? cl->pick_msg
		                                           : kvfpga_strerror(cl->pick_err)));
	} else {
		add(o, "selected", json_object_new_int64(cl->picked));
	}
	return o;
}

/* 0, or -ENOMEM when json-c could not build the document. */
static int print_json(const struct snapshot *s, const struct cl_report *cl, bool one_line)
{
	struct json_object *root = json_object_new_object();
	struct json_object *cards = json_object_new_array();
	char version[32], when[32];
	const char *text;
	struct tm tm;

	if (!root || !cards) {
		json_object_put(root);
		json_object_put(cards);
		return -ENOMEM;
	}
	snprintf(version, sizeof(version), "%d.%d.%d", KVFPGA_VERSION_MAJOR, KVFPGA_VERSION_MINOR,
	         KVFPGA_VERSION_PATCH);
	gmtime_r(&s->when, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	add(root, "version", json_object_new_string(version));
	add(root, "time", json_object_new_string(when));
	add(root, "driver_version", str_or_null(s->driver_version));
	for (size_t i = 0; i < s->n_cards; i++)
		json_object_array_add(cards, card_json(&s->cards[i], i));
	add(root, "cards", cards);
	add(root, "all_processes_visible", json_object_new_boolean(s->all_visible));
	if (cl)
		add(root, "opencl", opencl_json(cl));
	text = json_object_to_json_string_ext(
	        root, (one_line ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY) |
	                      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text) {
		json_object_put(root);
		return -ENOMEM;
	}
	printf("%s\n", text);
	json_object_put(root);
	return 0;
}

/* ---- main ---------------------------------------------------------------- */

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.1 && v <= 86400.0))
		return -1;
	*out = v;
	return 0;
}

static int parse_count(const char *s, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0)
		return -1;
	*out = v;
	return 0;
}

static void sleep_seconds(double seconds)
{
	struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "loop", required_argument, NULL, 'l' },
		{ "count", required_argument, NULL, 'c' },
		{ "no-opencl", no_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, opencl = true, loop = false;
	unsigned long count = 0;
	double interval = 0;
	struct cl_report cl;
	int c, status = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jl:c:nVh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'l':
			if (parse_seconds(optarg, &interval)) {
				fprintf(stderr,
				        PROG ": bad --loop '%s': want seconds, 0.1 to 86400\n",
				        optarg);
				return 2;
			}
			loop = true;
			break;
		case 'c':
			if (parse_count(optarg, &count)) {
				fprintf(stderr, PROG ": bad --count '%s': want a number >= 1\n",
				        optarg);
				return 2;
			}
			break;
		case 'n':
			opencl = false;
			break;
		case 'V':
			printf(PROG " %d.%d.%d\n", KVFPGA_VERSION_MAJOR, KVFPGA_VERSION_MINOR,
			       KVFPGA_VERSION_PATCH);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, PROG ": option '%s' needs a value (try --help)\n",
			        argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, PROG ": unknown option '%s' (try --help)\n",
			        argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s' (try --help)\n", argv[optind]);
		return 2;
	}
	if (count && !loop) {
		fprintf(stderr, PROG ": --count needs --loop (try --help)\n");
		return 2;
	}

	/* OpenCL platforms do not change while a process runs: list them once. */
	memset(&cl, 0, sizeof(cl));
	if (opencl)
		cl_report_take(&cl);

	for (unsigned long n = 1;; n++) {
		struct snapshot s;
		int ret = snapshot_take(&s);

		if (ret) {
			fprintf(stderr, PROG ": cannot read the cards: %s\n", kvfpga_strerror(ret));
			status = 1;
			break;
		}
		if (json) {
			ret = print_json(&s, opencl ? &cl : NULL, loop);
			if (ret) {
				fprintf(stderr, PROG ": cannot write JSON: %s\n",
				        kvfpga_strerror(ret));
				status = 1;
			}
		} else {
			if (loop && isatty(STDOUT_FILENO))
				printf("\033[H\033[2J"); /* like watch(1) */
			print_text(&s, opencl ? &cl : NULL);
			if (loop)
				printf("\n");
		}
		snapshot_free(&s);
		fflush(stdout);
		if (status || !loop || (count && n >= count))
			break;
		sleep_seconds(interval);
	}
	free(cl.devs);
	return status;
}
