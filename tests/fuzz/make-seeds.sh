#!/usr/bin/env bash
# Seed corpora for the libFuzzer targets, written by the project's own
# model generator (tools/kvfpga-genmodel): small llama2.c checkpoints, GGUF
# files (f32, f16, q8_0; tied and untied classifiers; GQA), tokenizer.bin
# files, and text for the encoder.  Also the two vocabularies fuzz_encode
# loads.  Deterministic: the same genmodel gives the same seeds.
#
# usage: make-seeds.sh GENMODEL OUTDIR
set -euo pipefail
genmodel=$1 out=$2
rm -rf "$out.tmp" && mkdir -p "$out.tmp"/{gguf,llama2c,tokbin,encode,vocab}
t=$out.tmp

le32() { # little-endian uint32 as printf escapes
	printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255))
}

# name dim hidden layers heads kv_heads vocab seq [extra genmodel flags]
shapes=(
	"tiny 8 16 1 2 1 320 16"
	"gqa 16 24 2 4 2 330 8"
	"untied 8 12 1 1 1 320 4 --untied"
	"q8 32 64 1 2 2 340 8"
)
for s in "${shapes[@]}"; do
	read -r name dim hidden layers heads kv vocab seq extra <<<"$s"
	args=(--dim "$dim" --hidden "$hidden" --layers "$layers" --heads "$heads" --kv-heads "$kv"
		--vocab "$vocab" --seq-len "$seq" --seed 7 -q ${extra:+"$extra"})
	types=(f32 f16)
	[ $((dim % 32)) -eq 0 ] && [ $((hidden % 32)) -eq 0 ] && types+=(q8_0)
	for ty in "${types[@]}"; do
		"$genmodel" "${args[@]}" -o "$t/llama2c/$name.bin" -t "$t/vocab/$name.tok" \
			--gguf "$t/gguf/$name-$ty.gguf" --gguf-type "$ty"
	done
	{ printf %b "$(le32 "$vocab")"; cat "$t/vocab/$name.tok"; } >"$t/tokbin/$name"
done
# A vocabulary size that disagrees with the file (the loader must say so).
{ printf %b "$(le32 321)"; cat "$t/vocab/tiny.tok"; } >"$t/tokbin/tiny-mismatch"

# The encoder's vocabularies: genmodel's default tokenizer and its GGUF twin.
"$genmodel" --dim 8 --hidden 16 --layers 1 --heads 2 --kv-heads 1 --seq-len 8 -q \
	-o "$t/vocab/encode.bin" -t "$t/vocab/encode.tok" --gguf "$t/vocab/encode.gguf"

# Encoder inputs: byte 0 picks the vocabulary (bit 0) and flags (bits 1-3).
i=0
while IFS= read -r line; do
	for b in '\x00' '\x01' '\x03' '\x08' '\x09'; do
		{ printf %b "$b"; printf %b "$line"; } >"$t/encode/text-$i"
		i=$((i + 1))
	done
done <<'TEXT'
Once upon a time, there was a little girl named Lily.
  leading spaces and   runs   of spaces  
caf\xc3\xa9 na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xe2\x96\x81
broken \xff\xfe \xc0\x80 \xed\xa0\x80 \xe2\x82 \x80\x80 \xf4\x90\x80\x80
<s> </s> <unk> <0x41> <0xZZ>
tabs	and
newlines
TEXT
printf '\x01' >"$t/encode/empty"
printf '\x00a\x00b' >"$t/encode/nul"

rm -rf "$out"
mv "$t" "$out"
