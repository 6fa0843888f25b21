#!/usr/bin/env bash
# `make bench`: run every benchmark, each with a warm-up and repetitions and
# against a baseline measured in the same run, then write
# bench/out/results.json, bench/out/results.md (the table printed at the
# end) and, when gnuplot is installed, bench/out/attention.png.  Raw
# outputs stay in bench/out/raw/.
#
# The figures (the README's "Performance" section explains them):
#   1 host memory read bandwidth, 1 and 2 threads (membw)
#   2 decode attention on the engine / figure 1 (attention_sweep, and
#     attention_bench --json as a cross-check)
#   3 prefill attention FLOP/s and bytes ratio (attention_sweep)
#   4 KV append through the mapped card memory, system calls per token
#     (kv_append_bench)
#   5 time to first token, 1000-token prefix cached vs cold (prefix_bench)
#   6 end to end: kvfpga-run on generated stories15M/110M-shaped models
#   7 figure 4 on the real driver vs the emulation, in one VM boot
#     (tests/vm/run-vm.sh --suite bench; needs QEMU, a Debian kernel and
#     kvfpga.ko built for it by `make module`)
# A benchmark that fails is reported and the others still run; the exit
# status is then 1.
#
# Environment: BUILD (default build), BENCH_QUICK=1 (a short run),
# BENCH_VM=0 (skip figure 7), BENCH_VM_KERNEL (default: the newest kernel
# in /boot with a kvfpga.ko in $BUILD/module/), BENCH_E2E_REPS,
# BENCH_NICE=N (run the benchmarks under `nice -n N`, e.g. -10 as root so
# that other work on the machine disturbs them less; default: unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
BUILD=${BUILD:-build}
quick=${BENCH_QUICK:-0}
[ "$quick" = 1 ] || quick=0
out=$repo/bench/out
raw=$out/raw
bin=$BUILD/bench
models=$BUILD/bench/models
start=$(date +%s)
failed=0

rm -rf "$raw"
rm -f "$out/results.json" "$out/results.md" "$out/attention.png" "$out/attention.dat"
mkdir -p "$raw" "$models"
qarg=()
[ "$quick" = 0 ] || qarg=(--quick)

log() { echo "bench: [$(($(date +%s) - start))s] $*" >&2; }
# note FIGURE TEXT: a figure skipped or failed, for the report.
note() { printf '%s\t%s\n' "$1" "$2" >>"$raw/notes.tsv"; log "figure $1 $2"; }
# step FIGURES OUTFILE CMD...: CMD's stdout into OUTFILE; a failure is noted
# for each of FIGURES and the run goes on (what CMD wrote is kept: e.g.
# attention_sweep's results when a case disagreed with the reference).
step() {
	local figs=$1 outfile=$2 f
	shift 2
	if "$@" >"$outfile"; then
		return 0
	fi
	[ -s "$outfile" ] || rm -f "$outfile"
	for f in $figs; do
		note "$f" "failed: $(basename "$1") exited with an error (messages above)"
	done
	failed=1
	return 1
}

if [ -n "${BENCH_NICE:-}" ]; then
	renice -n "$BENCH_NICE" -p $$ >/dev/null || { echo "bench: cannot renice to $BENCH_NICE" >&2; exit 1; }
fi
command -v python3 >/dev/null || { echo "bench: python3 is needed for the report (apt-get install python3)" >&2; exit 1; }
for b in membw attention_sweep kv_append_bench prefix_bench attention_bench; do
	[ -x "$bin/$b" ] || { echo "bench: $bin/$b is not built (make bench builds it)" >&2; exit 1; }
done

log "1: host memory read bandwidth and peak FLOP/s (membw)"
step 1 "$raw/membw.json" "$bin/membw" --json "${qarg[@]}" || true

log "2: attention_bench --json (the attention engineer's decode benchmark, a cross-check)"
step 2 "$raw/attention_bench.json" "$bin/attention_bench" --json "${qarg[@]}" || true
log "2, 3: decode and prefill attention matrix (attention_sweep)"
step "2 3" "$raw/attention_sweep.json" "$bin/attention_sweep" --json "${qarg[@]}" || true

log "4: KV append through the mapped card memory (kv_append_bench)"
step 4 "$raw/kv_append.json" "$bin/kv_append_bench" --json "${qarg[@]}" || true

# Generated models: deterministic, kept between runs, remade when the
# generator changes.
genmodel() { # NAME ARGS...
	local name=$1
	shift
	if [ ! -s "$models/$name.bin" ] || [ "$BUILD/bin/kvfpga-genmodel" -nt "$models/$name.bin" ]; then
		log "generating $name"
		"$BUILD/bin/kvfpga-genmodel" -q "$@" -o "$models/$name.bin.tmp" -t "$models/$name.tok" &&
			mv "$models/$name.bin.tmp" "$models/$name.bin"
	fi
}
genmodel stories15M --preset stories15M
genmodel stories15M-1k --preset stories15M --seq-len 1024
[ "$quick" = 1 ] || genmodel stories110M --preset stories110M

log "5: time to first token, prefix cached vs cold (prefix_bench)"
step 5 "$raw/prefix.json" "$bin/prefix_bench" --json "${qarg[@]}" \
	--model "$models/stories15M-1k.bin" || true

# ---- 6: end to end ----
# One prompt of 95 tokens (prefill, then decode), and 8 prompts decoded
# together.  Before each pair of kvfpga-run calls a short membw run gives
# the memory floor and the compute ceiling of that moment.
prompt="Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine with her big brown dog. One day, she saw a shiny red ball in the tall green grass near the old tree. She ran to the ball and picked it up. Her mom smiled and said they could go to the park after lunch. Lily was very happy and she hugged her dog."
prompts=$raw/prompts8.txt
for i in 1 2 3 4 5 6 7 8; do
	echo "Once upon a time there was a child called number $i who liked to"
done >"$prompts"
e2e_models=(stories15M stories110M)
e2e_backends=(card host)
e2e_reps=${BENCH_E2E_REPS:-3}
if [ "$quick" = 1 ]; then
	e2e_models=(stories15M)
	e2e_reps=${BENCH_E2E_REPS:-1}
	note 6 "skipped for stories110M (BENCH_QUICK=1)"
fi
for m in "${e2e_models[@]}"; do
	# Tokens to generate: fewer for the larger model, to stay in the time budget.
	n_single=128 n_batch=64
	[ "$m" = stories15M ] || { n_single=64; n_batch=32; }
	for backend in "${e2e_backends[@]}"; do
		attn=(--attention "$backend")
		[ "$backend" = host ] || attn+=(--emulate)
		run=("$BUILD/bin/kvfpga-run" -m "$models/$m.bin" -z "$models/$m.tok" -t 2 "${attn[@]}" --temp 0)
		log "6: end to end, $m, attention $backend ($e2e_reps repetitions)"
		# Warm-up: page cache, the OpenCL program cache.
		if ! "${run[@]}" -p "$prompt" -n 4 >/dev/null 2>"$raw/e2e-$m-$backend-warmup.txt"; then
			cat "$raw/e2e-$m-$backend-warmup.txt" >&2
			note 6 "failed: kvfpga-run on $m with $backend attention"
			failed=1
			continue
		fi
		for r in $(seq 1 "$e2e_reps"); do
			base=$raw/e2e-$m-$backend-$r
			if ! step 6 "$base-single.membw.json" "$bin/membw" --json --reps 3 \
				--bytes $((256 << 20)) --flops-seconds 0.05 ||
				! step 6 "$base-single.out" "${run[@]}" -p "$prompt" -n "$n_single" 2>"$base-single.txt" ||
				! step 6 "$base-batch.out" "${run[@]}" --prompts "$prompts" --parallel 8 \
					-n "$n_batch" 2>"$base-batch.txt"; then
				cat "$base"-*.txt >&2 || true
				break
			fi
		done
	done
done

# ---- 7: the real driver in a VM ----
vm_kernel=${BENCH_VM_KERNEL:-}
if [ -z "$vm_kernel" ]; then
	for f in /boot/vmlinuz-*; do
		v=${f#/boot/vmlinuz-}
		if [ -e "$BUILD/module/$v/driver/kvfpga.ko" ]; then echo "$v"; fi
	done | sort -V | tail -n 1 >"$raw/vm-kernel"
	vm_kernel=$(cat "$raw/vm-kernel")
fi
if [ "${BENCH_VM:-1}" = 0 ]; then
	note 7 "skipped: BENCH_VM=0"
elif [ "$BUILD" != build ]; then
	note 7 "skipped: the guest runs build/bench/kv_append_bench, and BUILD=$BUILD"
elif ! command -v qemu-system-x86_64 >/dev/null; then
	note 7 "skipped: no qemu-system-x86_64 (make deps)"
elif [ -z "$vm_kernel" ]; then
	note 7 "skipped: no kernel in /boot with kvfpga.ko built for it (make module)"
elif [ ! -e "/boot/vmlinuz-$vm_kernel" ] || [ ! -e "$BUILD/module/$vm_kernel/driver/kvfpga.ko" ]; then
	note 7 "skipped: no /boot/vmlinuz-$vm_kernel, or no kvfpga.ko built for it (make module)"
else
	vmout=$repo/$BUILD/vm/bench-$vm_kernel
	log "7: KV append on the real driver vs the emulation, in a VM ($vm_kernel)"
	if tests/vm/run-vm.sh --kernel "$vm_kernel" --suite bench --out "$vmout" --timeout 900 >"$raw/vm.log" 2>&1; then
		mkdir -p "$raw/vm"
		cp "$vmout"/bench/kv_append-vm.json "$raw/vm/"
		echo "$vm_kernel" >"$raw/vm/kernel"
	else
		tail -n 5 "$raw/vm.log" >&2
		note 7 "failed: the VM run failed (see $vmout/console.log)"
		failed=1
	fi
fi

elapsed=$(($(date +%s) - start))
log "report"
plot=()
command -v gnuplot >/dev/null && plot=(--gnuplot gnuplot)
python3 bench/report.py --raw "$raw" --out "$out" --quick "$quick" --elapsed "$elapsed" \
	--build "$BUILD" --cc "${BENCH_CC:-cc}" --cflags "${BENCH_CFLAGS:-}" "${plot[@]}" || failed=1
[ ! -e "$out/results.md" ] || cat "$out/results.md"
if [ "$failed" = 1 ]; then
	log "done, with failures (above): $out/results.json"
	exit 1
fi
log "done: $out/results.json"
