/* SPDX-License-Identifier: MIT */
/*
 * Disk cache of built OpenCL programs.  An entry is
 *   "KVFPGAC1" | u64 key_len | u64 binary_len | key text | binary
 * in <dir>/<XXH3-64 of the key, hex>.bin.  The key text holds everything the
 * binary depends on (ABI, platform, device, driver, build options and the
 * whole kernel source) and is compared exactly on load, so a hash
 * collision or a stale entry is only a miss, never a wrong program.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "engine_internal.h"

#define CACHE_MAGIC    "KVFPGAC1"
#define CACHE_HDR      24
#define CACHE_MAX_FILE (1ull << 30)

int kvf_cache_key_make(const struct kvfpga_engine *e, const char *options,
                       struct kvf_cache_key *key)
{
	char head[2048];
	int n;

	n = snprintf(head, sizeof(head),
	             "kvfpga attention program\nabi=%u\nplatform=%s\ndevice=%s\n"
	             "device-version=%s\ndriver=%s\noptions=%s\nsource-bytes=%zu\n--\n",
	             KVF_KERNEL_ABI, e->platform_name, e->device_name, e->device_version,
	             e->driver_version, options, e->source_len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENAMETOOLONG;
	key->len = (size_t)n + e->source_len;
	key->text = malloc(key->len);
	if (!key->text)
		return -ENOMEM;
	memcpy(key->text, head, (size_t)n);
	memcpy(key->text + n, e->source, e->source_len);
	key->hash = XXH3_64bits(key->text, key->len);
	return 0;
}

void kvf_cache_key_free(struct kvf_cache_key *key)
{
	free(key->text);
	key->text = NULL;
	key->len = 0;
}

int kvf_cache_dir(const struct kvfpga_engine_opts *opts, char *dir, size_t len)
{
	const char *base;
	int n;

	if (opts->cache_dir[0]) {
		n = snprintf(dir, len, "%s", opts->cache_dir);
	} else if ((base = getenv("XDG_CACHE_HOME")) && base[0] == '/') {
		/* The XDG spec ignores a relative XDG_CACHE_HOME. */
		n = snprintf(dir, len, "%s/kvfpga", base);
	} else if ((base = getenv("HOME")) && base[0] == '/') {
		n = snprintf(dir, len, "%s/.cache/kvfpga", base);
	} else {
		return -ENOENT;
	}
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	return 0;
}

int kvf_cache_path(const char *dir, const struct kvf_cache_key *key, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/%016llx.bin", dir, (unsigned long long)key->hash);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int kvf_read_file(const char *path, size_t max, unsigned char **data, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		ret = -EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO;
			free(buf);
			goto out;
		}
		got += (size_t)r;
	}
	buf[got] = '\0';
	*data = buf;
	*len = got;
out:
	close(fd);
	return ret;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

int kvf_cache_load(const char *path, const struct kvf_cache_key *key, unsigned char **binary,
                   size_t *binary_len)
{
	unsigned char *data, *bin;
	size_t len;
	uint64_t key_len, bin_len;
	int ret;

	ret = kvf_read_file(path, CACHE_MAX_FILE, &data, &len);
	if (ret)
		return ret == -ENOENT ? -ENOENT : -EBADMSG;
	ret = -EBADMSG;
	if (len < CACHE_HDR || memcmp(data, CACHE_MAGIC, 8))
		goto out;
	key_len = get_u64(data + 8);
	bin_len = get_u64(data + 16);
	if (key_len != key->len || bin_len == 0 || bin_len > len ||
	    CACHE_HDR + key_len + bin_len != len)
		goto out;
	if (memcmp(data + CACHE_HDR, key->text, key->len))
		goto out;
	bin = malloc(bin_len);
	if (!bin) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(bin, data + CACHE_HDR + key_len, bin_len);
	*binary = bin;
	*binary_len = bin_len;
	ret = 0;
out:
	free(data);
	return ret;
}

/* mkdir -p, the last component private to the user. */
static int make_dirs(const char *dir)
{
	char tmp[KVFPGA_ENGINE_PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, i == n ? 0700 : 0755) && errno != EEXIST)
			return -errno;
		tmp[i] = i == n ? '\0' : '/';
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int kvf_cache_store(const char *dir, const char *path, const struct kvf_cache_key *key,
                    const unsigned char *binary, size_t binary_len)
{
	char tmp[KVFPGA_ENGINE_PATH_MAX + 64];
	unsigned char hdr[CACHE_HDR];
	uint64_t v;
	int fd, ret, n;

	ret = make_dirs(dir);
	if (ret)
		return ret;
	n = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	memcpy(hdr, CACHE_MAGIC, 8);
	v = key->len;
	memcpy(hdr + 8, &v, 8);
	v = binary_len;
	memcpy(hdr + 16, &v, 8);
	ret = write_all(fd, hdr, sizeof(hdr));
	if (!ret)
		ret = write_all(fd, key->text, key->len);
	if (!ret)
		ret = write_all(fd, binary, binary_len);
	if (close(fd) && !ret)
		ret = -errno;
	/* Readers see the old entry or the complete new one, never a part. */
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}
