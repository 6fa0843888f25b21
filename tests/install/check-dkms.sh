#!/usr/bin/env bash
# check-dkms.sh: the DKMS packaging builds kvfpga.ko.  `make dkms-source`
# into a temporary DESTDIR, then `dkms add` and `dkms build` for every
# kernel with a build tree (/lib/modules/<release>/build), all in private
# trees (--sourcetree, --dkmstree, a throwaway signing key): nothing under
# /usr/src, /var/lib/dkms or /lib/modules is touched.  Each module must
# show the description, version, license, author and PCI alias in modinfo.
# Needs dkms (apt-get install dkms); not part of `make check`.
# Run by `make check-dkms` (MAKE, DKMS, KVFPGA_VERSION from mk/install.mk).
set -euo pipefail
cd "$(dirname "$0")/../.."
MAKE=${MAKE:-make}
DKMS=${DKMS:-dkms}
: "${KVFPGA_VERSION:?set by mk/install.mk}"

if ! command -v "$DKMS" >/dev/null; then
	echo "check-dkms: $DKMS not found: apt-get install dkms" >&2
	exit 1
fi
tmp=$(mktemp -d /tmp/kvfpga-dkms.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
src=$tmp/src
"$MAKE" --no-print-directory -s dkms-source DESTDIR="$src" DKMS_SRCDIR=/kvfpga-"$KVFPGA_VERSION"
mkdir -p "$tmp/tree"
# dkms signs what it builds, creating /var/lib/dkms/mok.{key,pub} when they do
# not exist: a throwaway key instead (unless framework.conf names one).
export mok_signing_key=$tmp/mok.key mok_certificate=$tmp/mok.pub
dk() { "$DKMS" --sourcetree "$src" --dkmstree "$tmp/tree" "$@"; }

failures=0 kernels=0
dk add -m kvfpga -v "$KVFPGA_VERSION" >"$tmp/add.log" 2>&1 || {
	echo "check-dkms: FAIL dkms add: $(tail -n 3 "$tmp/add.log" | tr '\n' ' ')" >&2
	exit 1
}
for build in /lib/modules/*/build; do
	[ -d "$build" ] || continue
	kver=$(basename "$(dirname "$build")")
	kernels=$((kernels + 1))
	if ! dk build -m kvfpga -v "$KVFPGA_VERSION" -k "$kver" >"$tmp/build.log" 2>&1; then
		echo "check-dkms: FAIL $kver: dkms build: $(tail -n 5 "$tmp/build.log" | tr '\n' ' ')" >&2
		failures=$((failures + 1))
		continue
	fi
	ko=$(find "$tmp/tree/kvfpga/$KVFPGA_VERSION/$kver" -name 'kvfpga.ko*' | head -n 1)
	info=$(modinfo "$ko" 2>&1 || true)
	missing=""
	for want in "version: *$KVFPGA_VERSION\$" "license: *GPL" "description: *kvfpga: " \
		"author: " "alias: *pci:v000010EEd00004B56"; do
		grep -Eq "^$want" <<<"$info" || missing="$missing '$want'"
	done
	[ "$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" = "$kver" ] || missing="$missing 'vermagic $kver'"
	if [ -z "$missing" ]; then
		echo "check-dkms: ok   $kver: dkms build, modinfo has version $KVFPGA_VERSION, license, description, author, alias"
	else
		echo "check-dkms: FAIL $kver: modinfo $ko lacks$missing" >&2
		failures=$((failures + 1))
	fi
done
if [ $kernels -eq 0 ]; then
	echo "check-dkms: FAIL no kernel build tree under /lib/modules (install linux-headers-<release>)" >&2
	exit 1
fi
if [ $failures -ne 0 ]; then
	exit 1
fi
echo "check-dkms: built for $kernels kernel(s)"
