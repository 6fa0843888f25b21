/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the GGUF loader, then the model's own tokenizer. */
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_model_one(data, size, KVFPGA_MODEL_FORMAT_GGUF);
}
