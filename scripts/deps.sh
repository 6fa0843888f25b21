#!/usr/bin/env bash
# Install the Debian packages kvfpga's build, tests, demo and benchmarks need.
# A quick no-op when all are present; as non-root, names what is missing.
set -euo pipefail

PKGS=(
	build-essential pkg-config git zlib1g-dev
	libdrm-dev check libxxhash-dev libjson-c-dev
	ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
	libxrt-dev
	clang libclang-rt-14-dev clang-format cppcheck valgrind
	qemu-system-x86 busybox-static cpio kmod xz-utils udev
	linux-source-6.1 sparse bc
	python3 gnuplot-nox
)

# Track Debian's current kernel packages rather than pinning an ABI that
# security updates retire: resolve the metapackages when they are known.
resolve_kernels() {
	local meta dep
	for meta in linux-image-amd64 linux-image-6.12-amd64; do
		dep=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
		[ -n "$dep" ] || continue
		echo "$dep" "${dep/linux-image-/linux-headers-}"
	done
}

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Kernels: any installed 6.1 and 6.12 image with headers will do.
have_kernel() { compgen -G "/boot/vmlinuz-$1*" >/dev/null && compgen -G "/usr/src/linux-headers-$1*-amd64" >/dev/null; }
need_kernels=0
have_kernel 6.1. || need_kernels=1
have_kernel 6.12. || need_kernels=1

if [ ${#missing[@]} -eq 0 ] && [ $need_kernels -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	msg="${missing[*]}"
	[ $need_kernels -eq 0 ] || msg="$msg linux-image-amd64 linux-headers-amd64 linux-image-6.12-amd64 linux-headers-6.12-amd64"
	echo "kvfpga: missing Debian packages:$msg" >&2
	echo "kvfpga: run 'sudo make deps' or install them with apt-get" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "kvfpga: installing missing Debian packages (a few minutes on a fresh machine)..." >&2
apt-get update -qq
if [ $need_kernels -eq 1 ]; then
	# shellcheck disable=SC2207
	kernels=($(resolve_kernels))
	[ ${#kernels[@]} -gt 0 ] || kernels=(linux-image-amd64 linux-headers-amd64 linux-image-6.12-amd64 linux-headers-6.12-amd64)
	missing+=("${kernels[@]}")
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "kvfpga: packages installed" >&2
