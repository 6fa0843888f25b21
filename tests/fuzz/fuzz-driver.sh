#!/usr/bin/env bash
# The in-VM uapi fuzzer (tests/vm/t_fuzz.c) alone, for longer than in
# `make check`: one VM per kernel, suite fuzz-<seconds>[-<seed>] (guest.sh).
#
# usage: fuzz-driver.sh [--seconds N] [--seed S] [--kernels "6.1 6.12"]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
seconds=600 seed="" want="6.1 6.12"
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) seconds=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--kernels) want=$2; shift 2 ;;
	*) echo "fuzz-driver: unknown argument $1" >&2; exit 2 ;;
	esac
done
case "$seconds$seed" in *[!0-9]*) echo "fuzz-driver: --seconds and --seed take numbers" >&2; exit 2 ;; esac

status=0
for prefix in $want; do
	rel=""
	for v in /boot/vmlinuz-"$prefix".*; do
		[ -e "$v" ] || continue
		r=${v#/boot/vmlinuz-}
		[ -e "$repo/build/module/$r/driver/kvfpga.ko" ] && rel=$r
	done
	if [ -z "$rel" ]; then
		echo "fuzz-driver: no Debian $prefix kernel with a built kvfpga.ko (make deps module)" >&2
		exit 1
	fi
	"$repo/tests/vm/run-vm.sh" --kernel "$rel" --suite "fuzz-$seconds${seed:+-$seed}" \
		--out "$repo/build/vm/fuzz-driver-$rel" --timeout $((seconds * 2 + 900)) || status=1
	grep -E '^fuzz: (seed|[0-9]+ calls)' "$repo/build/vm/fuzz-driver-$rel/t_fuzz.log" || true
done
exit $status
