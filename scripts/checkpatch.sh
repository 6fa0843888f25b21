#!/usr/bin/env bash
# checkpatch.pl --strict over driver/, from Debian's linux-source-6.1 when
# installed (the script is not in the headers packages).  Extracted once
# into build/checkpatch/.  CONSTANT_COMPARISON is ignored: it misfires on
# "LINUX_VERSION_CODE >= KERNEL_VERSION(...)", the one idiom for kernel
# version checks.
set -euo pipefail
cd "$(dirname "$0")/.."
tarball=$(ls /usr/src/linux-source-6.1*.tar.xz 2>/dev/null | head -n1 || true)
if [ -z "$tarball" ]; then
	echo "checkpatch: linux-source-6.1 not installed; skipped (make deps installs it)"
	exit 0
fi
dir=build/checkpatch
if [ ! -x "$dir/scripts/checkpatch.pl" ]; then
	mkdir -p "$dir"
	top=$(basename "$tarball" .tar.xz)
	tar -xJf "$tarball" -C "$dir" --strip-components=1 \
		"$top/scripts/checkpatch.pl" "$top/scripts/spelling.txt" "$top/scripts/const_structs.checkpatch"
fi
"$dir/scripts/checkpatch.pl" --strict --no-tree --terse --show-types \
	--ignore FILE_PATH_CHANGES,SPDX_LICENSE_TAG,LINUX_VERSION_CODE,CONSTANT_COMPARISON \
	-f driver/*.c driver/*.h include/uapi/drm/kvfpga_accel.h
