/* SPDX-License-Identifier: MIT */
/*
 * The attention kernels' OpenCL source, embedded at build time so that the
 * library does not depend on finding hw/kernels at run time (hw/hw.mk makes
 * this object depend on the .cl file).
 */
#include "engine_internal.h"

#ifndef KVFPGA_HW_DIR
#error "KVFPGA_HW_DIR must name the hw/kernels directory (lib/lib.mk sets it)"
#endif

__asm__(".pushsection .rodata.kvf_attention_cl, \"a\"\n"
        ".hidden kvf_attention_cl\n"
        ".hidden kvf_attention_cl_end\n"
        ".globl kvf_attention_cl\n"
        ".globl kvf_attention_cl_end\n"
        ".balign 16\n"
        "kvf_attention_cl:\n"
        ".incbin \"" KVFPGA_HW_DIR "/kvfpga_attention.cl\"\n"
        "kvf_attention_cl_end:\n"
        ".byte 0\n"
        ".popsection\n");

extern const char kvf_attention_cl[];
extern const char kvf_attention_cl_end[];

const char *kvf_embedded_source(size_t *len)
{
	/* Both labels bound one .incbin blob (above): one object to the linker. */
	// cppcheck-suppress comparePointers
	*len = (size_t)(kvf_attention_cl_end - kvf_attention_cl);
	return kvf_attention_cl;
}
