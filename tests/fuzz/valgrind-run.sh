#!/usr/bin/env bash
# kvfpga-run under valgrind (memcheck, full leak check) on models written by
# kvfpga-genmodel: the llama2.c checkpoint with its tokenizer.bin, the GGUF
# (q8_0) with its own vocabulary and several prompts batched, and the error
# paths a user hits first (prompt longer than the context, truncated model,
# missing file), which must fail cleanly and free everything.
#
# usage: valgrind-run.sh BUILD_DIR
set -uo pipefail
build=$1
run=$build/bin/kvfpga-run gen=$build/bin/kvfpga-genmodel
work=$build/valgrind
rm -rf "$work" && mkdir -p "$work"
# Memory errors and leaks give 99, told apart from the tool's own exit status.
# shellcheck disable=SC2054 # commas inside option values
vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
	--show-leak-kinds=definite,indirect,possible --track-origins=yes)

"$gen" -q --dim 64 --hidden 192 -o "$work/m.bin" -t "$work/tok.bin" --gguf "$work/m.gguf" --gguf-type q8_0 || exit 1
head -c 1000 "$work/m.bin" >"$work/trunc.bin"
printf 'Once upon a time\nThe little rabbit\nAnna had a red kite\n' >"$work/prompts.txt"

fails=0 runs=0
# check NAME WANT_STATUS ARGS...: the tool's status must be WANT_STATUS and valgrind silent.
check() {
	local name=$1 want=$2 log=$work/$1.log
	shift 2
	runs=$((runs + 1))
	"${vg[@]}" --log-file="$log.vg" "$run" "$@" >"$log" 2>&1
	local rc=$?
	if [ $rc -eq 99 ] || [ -s "$log.vg" ]; then
		echo "valgrind[$name]: FAIL: memory errors or leaks:"
		head -n 30 "$log.vg"
		fails=$((fails + 1))
	elif [ $rc -ne "$want" ]; then
		echo "valgrind[$name]: FAIL: exit $rc, want $want:"
		tail -n 5 "$log"
		fails=$((fails + 1))
	else
		echo "valgrind[$name]: clean (exit $rc)"
	fi
}

check llama2c-prompt 0 -m "$work/m.bin" -z "$work/tok.bin" -p "Once upon a time" -n 24 -t 2 --kv-type f16 -q
check gguf-batched 0 -m "$work/m.gguf" --prompts "$work/prompts.txt" --parallel 2 -n 12 -t 2 \
	--batch 16 --top-k 10 --top-p 0.9 --repeat-penalty 1.1 --kernels portable -q
check prompt-longer-than-context 1 -m "$work/m.bin" -z "$work/tok.bin" \
	-p "Once upon a time there was a little girl named Lily who loved to play" --ctx 8 -n 4 -q
check truncated-model 1 -m "$work/trunc.bin" -z "$work/tok.bin" -p "x" -q
check missing-model 1 -m "$work/does-not-exist.bin" -p "x" -q
# The errors must say what is wrong.
grep -q 'exceeds the context' "$work/prompt-longer-than-context.log" ||
	{ echo "valgrind[prompt-longer-than-context]: FAIL: no clear message"; fails=$((fails + 1)); }
grep -q 'truncated' "$work/truncated-model.log" ||
	{ echo "valgrind[truncated-model]: FAIL: no clear message"; fails=$((fails + 1)); }

echo "valgrind: $runs runs, $fails failed"
[ $fails -eq 0 ]
