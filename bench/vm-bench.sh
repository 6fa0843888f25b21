#!/bin/bash
# The in-VM part of `make bench` (figure 7), run by tests/vm/guest.sh's
# `bench` suite: the KV append benchmark on the real driver's mapping of
# the stand-in card against the library's host emulation, alternately, in
# this one boot.  The VM's absolute speed (QEMU TCG) means nothing; the
# ratio of the two does.  Writes one JSON per run into OUTDIR.
#
# usage: vm-bench.sh OUTDIR   (KVFPGA_BENCH_CARD: the card's slot, default
#                              0000:00:10.0; KVFPGA_BENCH_ROUNDS: default 3)
set -u
out=${1:?usage: vm-bench.sh OUTDIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/build/bench/kv_append_bench
card=${KVFPGA_BENCH_CARD:-0000:00:10.0}
rounds=${KVFPGA_BENCH_ROUNDS:-3}

[ -x "$bin" ] || { echo "vm-bench: $bin is not built"; exit 1; }
mkdir -p "$out" || exit 1
for round in $(seq 1 "$rounds"); do
	for dev in emulated card; do
		spec=$dev
		[ "$dev" = card ] && spec=$card
		echo "vm-bench: round $round, $dev"
		# 512 tokens of a stories110M-shaped model: 36 MiB of f32 K/V, well
		# inside the 256 MiB stand-in card.
		if ! "$bin" --json --device "$spec" --tokens 512 --reps 3 \
			--label "$dev round $round" >"$out/kv_append-$dev-$round.json" 2>"$out/kv_append-$dev-$round.log"; then
			cat "$out/kv_append-$dev-$round.log"
			exit 1
		fi
		cat "$out/kv_append-$dev-$round.log"
	done
done
