/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the llama2.c checkpoint loader (and format detection). */
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The last byte's low bit also sends some inputs through format detection. */
	return fuzz_model_one(data, size,
	                      size && (data[size - 1] & 1) ? KVFPGA_MODEL_FORMAT_AUTO
	                                                   : KVFPGA_MODEL_FORMAT_LLAMA2C);
}
