#!/usr/bin/env bash
# run-suite.sh: the in-VM driver suite on every Debian kernel the rig knows
# (each /boot/vmlinuz-<release> with kvfpga.ko built for it under
# build/module/<release>/), then the rig's own self-test: a deliberately
# broken driver (WARN_ON in probe) must make the rig fail.
#
# usage: run-suite.sh [--kernels "6.1 6.12"] [--no-selftest]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

want="6.1 6.12" selftest=1
while [ $# -gt 0 ]; do
	case "$1" in
	--kernels) want=$2; shift 2 ;;
	--no-selftest) selftest=0; shift ;;
	*) echo "run-suite: unknown argument $1" >&2; exit 2 ;;
	esac
done

kernels=()
for prefix in $want; do
	found=""
	for v in /boot/vmlinuz-"$prefix".*; do
		[ -e "$v" ] || continue
		rel=${v#/boot/vmlinuz-}
		[ -e "$repo/build/module/$rel/driver/kvfpga.ko" ] && found=$rel
	done
	if [ -z "$found" ]; then
		echo "run-suite: no Debian $prefix kernel with a built kvfpga.ko (make deps module)" >&2
		exit 1
	fi
	kernels+=("$found")
done

total_pass=0 total_fail=0 status=0
for k in "${kernels[@]}"; do
	log=$(mktemp)
	if "$here/run-vm.sh" --kernel "$k" | tee "$log"; then :; else status=1; fi
	line=$(grep -E '^vm\[.*\]: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
	p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
	f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
	total_pass=$((total_pass + ${p:-0})); total_fail=$((total_fail + ${f:-0}))
	# A run that failed for a reason other than a test (hang, kernel report)
	# counts as one more failure.
	if [ "$status" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then total_fail=$((total_fail + 1)); fi
	rm -f "$log"
done

if [ $selftest -eq 1 ]; then
	# Known-bad build: the probe WARNs.  The rig must catch it.
	k=${kernels[0]}
	bad=$repo/build/selftest-bad
	rm -rf "$bad" && mkdir -p "$bad"
	cp -a "$repo/Kbuild" "$repo/driver" "$repo/include" "$bad/"
	sed -i 's/^\tkdev->pdev = pdev;$/\tkdev->pdev = pdev;\n\tWARN_ON(1); \/* rig self-test: must be caught *\//' "$bad/driver/kvfpga_drv.c"
	grep -q 'rig self-test' "$bad/driver/kvfpga_drv.c" || { echo "run-suite: self-test patch did not apply" >&2; exit 1; }
	make -s -C "/lib/modules/$k/build" M="$bad" modules >/dev/null 2>&1
	if "$here/run-vm.sh" --kernel "$k" --suite smoke --module "$bad/driver/kvfpga.ko" \
		--out "$repo/build/vm/selftest-bad" --timeout 600 >"$repo/build/vm/selftest-bad.log" 2>&1; then
		echo "FAIL rig-selftest: a driver that WARNs in probe passed the rig"
		total_fail=$((total_fail + 1)); status=1
	elif grep -q 'kernel report in dmesg.txt: .*WARNING' "$repo/build/vm/selftest-bad.log"; then
		echo "PASS rig-selftest: a driver that WARNs in probe fails the rig"
		total_pass=$((total_pass + 1))
	else
		echo "FAIL rig-selftest: the broken driver failed for another reason (see build/vm/selftest-bad.log)"
		total_fail=$((total_fail + 1)); status=1
	fi
fi

echo "vm: $total_pass passed, $total_fail failed"
exit $status
