/* SPDX-License-Identifier: MIT */
/*
 * Shared by the libFuzzer targets (tests/fuzz/fuzz_*.c).
 *
 * The loaders take paths, so each input is written to a memfd and opened
 * as /proc/self/fd/N.  The model loader maps its file; for fuzzing,
 * lib/model.c is compiled with mmap/munmap renamed to fuzz_model_mmap/
 * fuzz_model_munmap (tests/fuzz/fuzz.mk), which read the file into a heap
 * block of exactly its size: AddressSanitizer then sees any read past the
 * end of the file, which a real mapping would hide in the page's tail.
 *
 * Oracles shared by the targets: whatever the input, every token id an
 * encoder returns is in the vocabulary and the streaming decoder always
 * produces valid UTF-8.  A violated property calls fuzz_fail(), which
 * aborts so that libFuzzer saves the input.
 */
#ifndef KVFPGA_FUZZ_COMMON_H
#define KVFPGA_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "kvfpga/model.h"
#include "kvfpga/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

__attribute__((noreturn, format(printf, 1, 2))) static inline void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz: property violated: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

/* The memfd every input goes through, and its /proc path. */
static int fuzz_memfd = -1;
static char fuzz_path[64];

static inline const char *fuzz_file(const uint8_t *data, size_t size)
{
	if (fuzz_memfd < 0) {
		fuzz_memfd = memfd_create("kvfpga-fuzz", MFD_CLOEXEC);
		if (fuzz_memfd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_memfd);
	}
	if (ftruncate(fuzz_memfd, 0) ||
	    (size && pwrite(fuzz_memfd, data, size, 0) != (ssize_t)size)) {
		perror("memfd write");
		abort();
	}
	return fuzz_path;
}

/* What lib/model.c calls instead of mmap/munmap when built for fuzzing. */
void *fuzz_model_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int fuzz_model_munmap(void *addr, size_t len);

void *fuzz_model_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	uint8_t *p = NULL;
	size_t done = 0;

	(void)addr;
	(void)prot;
	(void)flags;
	if (off != 0 || len == 0) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	/* Exactly @len bytes: the redzone starts where the file ends. */
	if (posix_memalign((void **)&p, 64, len)) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	while (done < len) {
		ssize_t n = pread(fd, p + done, len - done, (off_t)done);

		if (n <= 0) {
			free(p);
			errno = n < 0 ? errno : EIO;
			return MAP_FAILED;
		}
		done += (size_t)n;
	}
	return p;
}

int fuzz_model_munmap(void *addr, size_t len)
{
	(void)len;
	free(addr);
	return 0;
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static inline bool fuzz_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t need;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i - 1 < need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/*
 * Encode @text with @tok and check what holds for any tokenizer: ids in the
 * vocabulary, -ENOSPC (with the same count) when the output is one short,
 * and valid UTF-8 out of the streaming decoder.  The decoded text goes to
 * @decoded (malloc'd, caller frees) when not NULL.  Returns the token
 * count, or -1 when encoding failed with an allowed error.
 */
static inline long fuzz_encode_check(const struct kvfpga_tokenizer *tok, const uint8_t *text,
                                     size_t len, uint32_t flags, uint32_t **tokens_out,
                                     uint8_t **decoded, size_t *decoded_len)
{
	uint32_t vocab = kvfpga_tokenizer_vocab_size(tok);
	size_t cap = len + 8, n = 0, n2 = 0, out_len = 0, out_cap;
	uint32_t *toks = malloc(cap * sizeof(*toks));
	struct kvfpga_detok *d = NULL;
	char *piece_buf = NULL, *out = NULL;
	size_t piece_cap = 0;
	int ret;

	if (!toks)
		abort();
	ret = kvfpga_tokenizer_encode(tok, (const char *)text, len, flags, toks, cap, &n);
	if (ret == -ENOMEM) {
		free(toks);
		return -1;
	}
	if (ret)
		fuzz_fail("encode of %zu bytes (flags %#x) gave %d", len, flags, ret);
	/* Byte fallback bounds the count: one token per byte, plus the prefix, BOS and EOS. */
	if (n > len + 3)
		fuzz_fail("encode of %zu bytes gave %zu tokens", len, n);
	for (size_t i = 0; i < n; i++)
		if (toks[i] >= vocab)
			fuzz_fail("token %u at %zu is outside the vocabulary of %u", toks[i], i,
			          vocab);
	if (n > 0) {
		uint32_t small[1];

		ret = kvfpga_tokenizer_encode(tok, (const char *)text, len, flags, small, 0, &n2);
		if (ret != -ENOSPC || n2 != n)
			fuzz_fail("encode into 0 slots gave %d and count %zu, want -ENOSPC and %zu",
			          ret, n2, n);
	}

	/* Decode them all, streaming. */
	for (size_t i = 0; i < n; i++) {
		const char *piece;
		size_t plen;

		if (kvfpga_tokenizer_piece(tok, toks[i], &piece, &plen))
			fuzz_fail("no piece for token %u", toks[i]);
		if (3 * plen + 4 > piece_cap)
			piece_cap = 3 * plen + 4;
	}
	out_cap = n * piece_cap + 8;
	piece_buf = malloc(piece_cap + 4);
	out = malloc(out_cap);
	if (!piece_buf || !out || kvfpga_detok_create(tok, &d))
		abort();
	for (size_t i = 0; i < n; i++) {
		size_t got;

		ret = kvfpga_detok_push(d, toks[i], piece_buf, piece_cap, &got);
		if (ret)
			fuzz_fail("detok_push of token %u gave %d", toks[i], ret);
		if (got > piece_cap || piece_buf[got] != '\0')
			fuzz_fail("detok_push wrote %zu bytes into %zu", got, piece_cap);
		memcpy(out + out_len, piece_buf, got);
		out_len += got;
	}
	{
		size_t got;

		if (kvfpga_detok_flush(d, piece_buf, 4, &got) || got > 3)
			fuzz_fail("detok_flush failed");
		memcpy(out + out_len, piece_buf, got);
		out_len += got;
	}
	if (!fuzz_utf8_valid((const uint8_t *)out, out_len))
		fuzz_fail("the streaming decoder produced invalid UTF-8");
	kvfpga_detok_free(d);
	free(piece_buf);
	if (decoded) {
		*decoded = (uint8_t *)out;
		*decoded_len = out_len;
	} else {
		free(out);
	}
	if (tokens_out)
		*tokens_out = toks;
	else
		free(toks);
	return (long)n;
}

#endif
