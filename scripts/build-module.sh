#!/usr/bin/env bash
# Build kvfpga.ko for one kernel (--kdir DIR) or for every kernel build tree
# found: the running kernel's if present, else each /lib/modules/*/build.
# Each kernel builds in its own copy under build/module/<release>/, so
# several kernels never share object files.  Extra make arguments (W=1, C=1)
# pass through via KBUILD_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

kdirs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kdir) kdirs+=("$2"); shift 2 ;;
	*) echo "build-module: unknown argument $1" >&2; exit 2 ;;
	esac
done
if [ ${#kdirs[@]} -eq 0 ]; then
	if [ -d "/lib/modules/$(uname -r)/build" ]; then
		kdirs=("/lib/modules/$(uname -r)/build")
	else
		for d in /lib/modules/*/build; do [ -d "$d" ] && kdirs+=("$d"); done
	fi
fi
if [ ${#kdirs[@]} -eq 0 ]; then
	echo "build-module: no kernel build tree (install linux-headers-<version>, or pass KDIR=)" >&2
	exit 1
fi

for kdir in "${kdirs[@]}"; do
	# Name builds by the release the kernel reports (uname -r).
	case "$kdir" in
	/lib/modules/*/build|/lib/modules/*/build/) release=$(basename "$(dirname "$kdir")") ;;
	*) release=$(cat "$kdir/include/config/kernel.release") ;;
	esac
	out="$top/build/module/$release"
	mkdir -p "$out"
	# Copies keep their timestamps, so unchanged files are not rebuilt.
	cp -a "$top/Kbuild" "$top/driver" "$top/include" "$out/"
	echo "build-module: $release"
	make -s -C "$kdir" M="$out" ${KBUILD_ARGS:-} modules
	echo "build-module: $out/driver/kvfpga.ko"
done
