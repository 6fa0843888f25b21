/* SPDX-License-Identifier: MIT */
/*
 * .xclbin metadata through XRT (built when lib/lib.mk finds libxrt-dev).
 *
 * Debian's XRT 2.13 has a C API for xclbins in experimental/xrt_xclbin.h
 * (xrtXclbinAllocRawData, xrtXclbinGetXSAName, xrtXclbinGetUUID,
 * xrtXclbinGetNumKernels, xrtXclbinGetNumKernelComputeUnits, in
 * libxrt_coreutil); kernel and compute-unit names exist only in the C++
 * API (xrt::xclbin), so those come from the IP_LAYOUT section, read with
 * the C structures of XRT's xclbin.h.
 *
 * XRT's C functions catch their exceptions and report them through XRT's
 * message layer, which on a Debian install (no XILINX_XRT tree) itself
 * throws inside the handler: std::terminate, the process dies.  So the
 * library checks the whole container first (lengths, sections, IP layout,
 * well-formed metadata XML with the attributes XRT reads) and only hands
 * XRT an image that passed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

#if defined(KVFPGA_HAVE_XRT) && KVFPGA_HAVE_XRT
#include <experimental/xrt_xclbin.h>
#include <xclbin.h>
#include <stddef.h>

static const char *const attention_kernels[] = {
	"kvfpga_decode_partial",
	"kvfpga_decode_merge",
	"kvfpga_prefill",
	"kvfpga_build_info",
};

/*
 * Well-formedness of the EMBEDDED_METADATA XML: balanced elements, one
 * root, quoted attributes, and a name attribute on the elements XRT's
 * kernel parser reads (kernel, instance, arg, port).
 */
static int xml_check(const char *x, size_t n, char *msg, size_t len)
{
	char stack[64][64];
	int depth = 0, roots = 0;
	size_t i = 0;

	while (n && (x[n - 1] == '\0' || x[n - 1] == '\n' || x[n - 1] == ' '))
		n--;
	for (size_t k = 0; k < n; k++) {
		if (x[k] == '\0')
			return kvf_fail(msg, len, -EBADMSG, "metadata XML contains a NUL byte");
	}
	while (i < n) {
		size_t start, name_len;
		int closing = 0, self_closing = 0, has_name = 0;
		char name[64];

		if (x[i] != '<') {
			if (depth == 0 && x[i] != ' ' && x[i] != '\n' && x[i] != '\r' &&
			    x[i] != '\t')
				return kvf_fail(msg, len, -EBADMSG,
				                "metadata XML: text outside the root");
			i++;
			continue;
		}
		if (i + 4 <= n && !memcmp(x + i, "<!--", 4)) {
			const char *end = NULL;

			for (size_t k = i + 4; k + 3 <= n; k++) {
				if (!memcmp(x + k, "-->", 3)) {
					end = x + k;
					break;
				}
			}
			if (!end)
				return kvf_fail(msg, len, -EBADMSG, "metadata XML: open comment");
			i = (size_t)(end - x) + 3;
			continue;
		}
		if (i + 1 < n && (x[i + 1] == '?' || x[i + 1] == '!')) {
			while (i < n && x[i] != '>')
				i++;
			if (i == n)
				return kvf_fail(msg, len, -EBADMSG,
				                "metadata XML: open declaration");
			i++;
			continue;
		}
		i++;
		if (i < n && x[i] == '/') {
			closing = 1;
			i++;
		}
		start = i;
		while (i < n && x[i] != ' ' && x[i] != '>' && x[i] != '/' && x[i] != '\n' &&
		       x[i] != '\t' && x[i] != '\r')
			i++;
		name_len = i - start;
		if (name_len == 0 || name_len >= sizeof(name))
			return kvf_fail(msg, len, -EBADMSG, "metadata XML: bad element name");
		memcpy(name, x + start, name_len);
		name[name_len] = '\0';
		/* Attributes: key="value" or key='value', values may hold '>'. */
		while (i < n && x[i] != '>') {
			if (x[i] == '/' && i + 1 < n && x[i + 1] == '>') {
				self_closing = 1;
				i++;
				continue;
			}
			if (x[i] == '"' || x[i] == '\'') {
				char q = x[i++];

				while (i < n && x[i] != q)
					i++;
				if (i == n)
					return kvf_fail(msg, len, -EBADMSG,
					                "metadata XML: open attribute value");
			} else if (x[i] == '=' && i >= 5 && !memcmp(x + i - 4, "name", 4) &&
			           (x[i - 5] == ' ' || x[i - 5] == '\n' || x[i - 5] == '\t')) {
				has_name = 1;
			}
			i++;
		}
		if (i == n)
			return kvf_fail(msg, len, -EBADMSG, "metadata XML: open tag <%s", name);
		i++;
		if (closing) {
			if (depth == 0 || strcmp(stack[depth - 1], name))
				return kvf_fail(
				        msg, len, -EBADMSG,
				        "metadata XML: </%s> does not close the open element",
				        name);
			depth--;
			continue;
		}
		if ((!strcmp(name, "kernel") || !strcmp(name, "instance") || !strcmp(name, "arg") ||
		     !strcmp(name, "port")) &&
		    !has_name)
			return kvf_fail(msg, len, -EBADMSG, "metadata XML: <%s> without a name",
			                name);
		if (depth == 0 && ++roots > 1)
			return kvf_fail(msg, len, -EBADMSG, "metadata XML: more than one root");
		if (self_closing)
			continue;
		if (depth == (int)(sizeof(stack) / sizeof(stack[0])))
			return kvf_fail(msg, len, -EBADMSG, "metadata XML nests too deep");
		memcpy(stack[depth++], name, name_len + 1);
	}
	if (depth)
		return kvf_fail(msg, len, -EBADMSG, "metadata XML: <%s> is not closed",
		                stack[depth - 1]);
	if (roots != 1)
		return kvf_fail(msg, len, -EBADMSG, "metadata XML has no root element");
	return 0;
}

static int ip_layout_read(const unsigned char *sec, uint64_t size, struct kvfpga_xclbin_info *info,
                          char *msg, size_t len)
{
	const size_t head = offsetof(struct ip_layout, m_ip_data);
	int32_t count;
	int found[sizeof(attention_kernels) / sizeof(attention_kernels[0])] = { 0 };

	if (size < head)
		return kvf_fail(msg, len, -EBADMSG, "IP_LAYOUT section too short");
	memcpy(&count, sec, sizeof(count));
	if (count < 0 || (uint64_t)count > (size - head) / sizeof(struct ip_data))
		return kvf_fail(msg, len, -EBADMSG, "IP_LAYOUT count %d exceeds the section",
		                (int)count);
	info->n_ips = (uint32_t)count;
	for (int32_t i = 0; i < count; i++) {
		struct ip_data ip;
		char name[sizeof(ip.m_name) + 1];
		const char *colon;

		memcpy(&ip, sec + head + (size_t)i * sizeof(ip), sizeof(ip));
		memcpy(name, ip.m_name, sizeof(ip.m_name));
		name[sizeof(ip.m_name)] = '\0';
		if (!memchr(ip.m_name, '\0', sizeof(ip.m_name)))
			return kvf_fail(msg, len, -EBADMSG,
			                "IP_LAYOUT entry %d: name not terminated", (int)i);
		if (i < (int32_t)(sizeof(info->ips) / sizeof(info->ips[0])))
			snprintf(info->ips[i], sizeof(info->ips[i]), "%s", name);
		if (ip.m_type != IP_KERNEL)
			continue;
		colon = strchr(name, ':');
		for (size_t k = 0; k < sizeof(attention_kernels) / sizeof(attention_kernels[0]);
		     k++) {
			size_t kl = strlen(attention_kernels[k]);

			if (colon && (size_t)(colon - name) == kl &&
			    !strncmp(name, attention_kernels[k], kl))
				found[k] = 1;
		}
	}
	info->has_attention = 1;
	for (size_t k = 0; k < sizeof(found) / sizeof(found[0]); k++)
		info->has_attention &= found[k];
	return 0;
}

int kvf_xclbin_check(const unsigned char *data, size_t len, struct kvfpga_xclbin_info *info,
                     char *msg, size_t msg_len)
{
	struct axlf top;
	const size_t sec0 = offsetof(struct axlf, m_sections);
	uint64_t total;
	uint32_t n_sec;
	xrtXclbinHandle h;
	int xml_seen = 0, ret;

	memset(info, 0, sizeof(*info));
	if (len < sizeof(top))
		return kvf_fail(msg, msg_len, -EBADMSG, "too short for an xclbin (%zu bytes)", len);
	memcpy(&top, data, sizeof(top));
	if (memcmp(top.m_magic, "xclbin2", 8))
		return kvf_fail(msg, msg_len, -EBADMSG, "not an xclbin (no xclbin2 magic)");
	total = top.m_header.m_length;
	n_sec = top.m_header.m_numSections;
	if (total < sizeof(top) || total > len)
		return kvf_fail(msg, msg_len, -EBADMSG,
		                "header length %llu does not fit the %zu-byte file",
		                (unsigned long long)total, len);
	if (n_sec == 0 || n_sec > XCLBIN_MAX_NUM_SECTION ||
	    sec0 + (uint64_t)n_sec * sizeof(struct axlf_section_header) > total)
		return kvf_fail(msg, msg_len, -EBADMSG, "bad section count %u", n_sec);
	if (!memchr(top.m_header.m_platformVBNV, '\0', sizeof(top.m_header.m_platformVBNV)))
		return kvf_fail(msg, msg_len, -EBADMSG, "platform name not terminated");
	for (uint32_t s = 0; s < n_sec; s++) {
		struct axlf_section_header sh;

		memcpy(&sh, data + sec0 + (size_t)s * sizeof(sh), sizeof(sh));
		if (sh.m_sectionOffset > total || sh.m_sectionSize > total - sh.m_sectionOffset)
			return kvf_fail(msg, msg_len, -EBADMSG, "section %u lies outside the file",
			                s);
		if (sh.m_sectionKind == IP_LAYOUT) {
			ret = ip_layout_read(data + sh.m_sectionOffset, sh.m_sectionSize, info, msg,
			                     msg_len);
			if (ret)
				return ret;
		} else if (sh.m_sectionKind == EMBEDDED_METADATA) {
			ret = xml_check((const char *)data + sh.m_sectionOffset,
			                (size_t)sh.m_sectionSize, msg, msg_len);
			if (ret)
				return ret;
			xml_seen = 1;
		}
	}
	if (!xml_seen)
		return kvf_fail(msg, msg_len, -EBADMSG, "no EMBEDDED_METADATA section");
	if (total > INT32_MAX)
		return kvf_fail(msg, msg_len, -EFBIG, "too large for XRT's raw-data reader");

	h = xrtXclbinAllocRawData((const char *)data, (int)total);
	if (!h)
		return kvf_fail(msg, msg_len, -EBADMSG, "xrtXclbinAllocRawData rejected it");
	{
		char vbnv[sizeof(info->platform)];
		int got = 0;

		if (xrtXclbinGetXSAName(h, vbnv, (int)sizeof(vbnv), &got) == 0)
			snprintf(info->platform, sizeof(info->platform), "%s", vbnv);
	}
	if (xrtXclbinGetUUID(h, info->uuid))
		memset(info->uuid, 0, sizeof(info->uuid));
	info->n_kernels = (uint32_t)xrtXclbinGetNumKernels(h);
	info->n_compute_units = (uint32_t)xrtXclbinGetNumKernelComputeUnits(h);
	xrtXclbinFreeHandle(h);
	return 0;
}

int kvfpga_xclbin_inspect(const char *path, struct kvfpga_xclbin_info *info, char *msg,
                          size_t msg_len)
{
	struct kvfpga_xclbin_info tmp;
	unsigned char *data;
	size_t len;
	int ret;

	if (msg && msg_len)
		msg[0] = '\0';
	if (!path || !info)
		return -EINVAL;
	ret = kvf_read_file(path, 1ull << 30, &data, &len);
	if (ret)
		return kvf_fail(msg, msg_len, ret, "%s: %s", path, strerror(-ret));
	ret = kvf_xclbin_check(data, len, &tmp, msg, msg_len);
	free(data);
	if (!ret)
		*info = tmp;
	return ret;
}

#else /* !KVFPGA_HAVE_XRT */

int kvf_xclbin_check(const unsigned char *data, size_t len, struct kvfpga_xclbin_info *info,
                     char *msg, size_t msg_len)
{
	return kvf_fail(msg, msg_len, -ENOTSUP, "libkvfpga was built without XRT (libxrt-dev)");
}

int kvfpga_xclbin_inspect(const char *path, struct kvfpga_xclbin_info *info, char *msg,
                          size_t msg_len)
{
	if (!path || !info)
		return -EINVAL;
	return kvf_fail(msg, msg_len, -ENOTSUP, "libkvfpga was built without XRT (libxrt-dev)");
}

#endif
