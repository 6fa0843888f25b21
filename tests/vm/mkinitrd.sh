#!/usr/bin/env bash
# mkinitrd.sh KVER OUT.gz: a tiny initramfs for the test VM: static busybox,
# tests/vm/init, and the modules needed to mount the host's root over 9p
# (decompressed: busybox insmod reads plain .ko only).  Everything else the
# guest runs comes from the host root.
set -euo pipefail
kver=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work"/{bin,proc,sys,dev,host,lib/mods}
cp /bin/busybox "$work/bin/busybox"
cp "$here/init" "$work/init"
chmod 755 "$work/init"

# Load order: dependencies first (modinfo -F depends), built-ins skipped.
declare -A seen=()
order=()
add_module() {
	local name=$1 path dep
	[ -n "${seen[$name]:-}" ] && return 0
	seen[$name]=1
	path=$(modinfo -k "$kver" -n "$name" 2>/dev/null) || return 0
	case "$path" in
	/*) ;;
	*) return 0 ;; # (builtin)
	esac
	for dep in $(modinfo -k "$kver" -F depends "$name" | tr ',' ' '); do
		add_module "$dep"
	done
	case "$path" in
	*.ko.xz) xz -dc "$path" >"$work/lib/mods/$name.ko" ;;
	*.ko.zst) zstd -qdc "$path" >"$work/lib/mods/$name.ko" ;;
	*.ko.gz) gzip -dc "$path" >"$work/lib/mods/$name.ko" ;;
	*) cp "$path" "$work/lib/mods/$name.ko" ;;
	esac
	order+=("$name")
}
for m in virtio_pci 9pnet_virtio 9p; do
	add_module "$m"
done
printf '%s\n' "${order[@]}" >"$work/lib/mods/order"

(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
