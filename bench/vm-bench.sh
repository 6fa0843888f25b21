#!/bin/bash
# The in-VM part of `make bench` (figure 7), run by tests/vm/guest.sh's
# `bench` suite: the KV append benchmark on the real driver's mapping of
# the stand-in card against the library's host emulation, in this one boot
# and in one process, each repetition on the card then on the emulation
# (kv_append_bench --compare-device).  The VM's absolute speed (QEMU TCG)
# means nothing; the ratio of the two does.  Writes kv_append-vm.json into
# OUTDIR.
#
# usage: vm-bench.sh OUTDIR   (KVFPGA_BENCH_CARD: the card's slot, default
#                              0000:00:10.0; KVFPGA_BENCH_REPS: default 15)
set -u
out=${1:?usage: vm-bench.sh OUTDIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/build/bench/kv_append_bench
card=${KVFPGA_BENCH_CARD:-0000:00:10.0}
reps=${KVFPGA_BENCH_REPS:-15}

[ -x "$bin" ] || { echo "vm-bench: $bin is not built"; exit 1; }
mkdir -p "$out" || exit 1
# 512 tokens of a stories110M-shaped model: 36 MiB of f32 K/V, well inside
# the 256 MiB stand-in card.
"$bin" --json --device "$card" --compare-device emulated --tokens 512 --reps "$reps" \
	--label "VM $(uname -r): card $card vs host emulation" >"$out/kv_append-vm.json" 2>"$out/kv_append-vm.log"
rc=$?
cat "$out/kv_append-vm.log"
exit $rc
