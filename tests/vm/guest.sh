#!/bin/bash
# Runs inside the test VM (chroot of the host's root, see tests/vm/init):
# loads kvfpga.ko, binds it to the ivshmem stand-in cards, runs the in-VM
# tests and leaves results, dmesg and the taint mask in the results folder.
#
# Each result is one line in results.txt: "PASS <name>" or
# "FAIL <name>: <why>".  The host (run-vm.sh) counts them.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
OUT=/tmp/kvfpga-out
REPO=$KVFPGA_REPO
KVER=$(uname -r)
MODULE=${KVFPGA_MODULE:-$REPO/build/module/$KVER/driver/kvfpga.ko}
SUITE=${KVFPGA_SUITE:-full}
VMBIN=$REPO/build/vmtests
export KVFPGA_VM_OUT=$OUT
# The host root is read-only: caches (PoCL, the engine) go to the tmpfs.
export HOME=/tmp XDG_CACHE_HOME=/tmp/.cache POCL_CACHE_DIR=/tmp/.cache/pocl
results=$OUT/results.txt
: >"$results"

pass() { echo "PASS $1" >>"$results"; echo "PASS $1"; }
fail() { echo "FAIL $1: $2" >>"$results"; echo "FAIL $1: $2"; }
check() { # check NAME CMD...: PASS when CMD succeeds
	local name=$1; shift
	if "$@" >"$OUT/check.log" 2>&1; then pass "$name"; else fail "$name" "$(tail -n 3 "$OUT/check.log" | tr '\n' ' ')"; fi
}
finish() {
	dmesg >"$OUT/dmesg.txt"
	cat /proc/sys/kernel/tainted >"$OUT/tainted"
	echo "$KVER" >"$OUT/kernel"
	sync
	touch "$OUT/done"
	exit 0
}

mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
echo "guest: kernel $KVER, suite $SUITE, module $MODULE"

# DRM core and the buddy allocator come from the kernel's own modules.
modprobe drm || fail load-drm "modprobe drm failed"
modprobe drm_buddy 2>/dev/null || true
if ! insmod "$MODULE"; then
	fail load-module "insmod $MODULE failed"
	finish
fi
pass load-module

# Bind the ivshmem stand-ins (1af4:1110) by id; the driver's own table
# carries the real card's id.
echo "1af4 1110" >/sys/bus/pci/drivers/kvfpga/new_id 2>/dev/null || fail bind "new_id rejected"
sleep 1

# KVFPGA_CARDS="slot=kind:size ...": what the host put behind each device.
for card in $KVFPGA_CARDS; do
	slot=${card%%=*} rest=${card#*=}
	kind=${rest%%:*}
	if [ "$kind" = good ]; then
		if [ -e "/sys/bus/pci/drivers/kvfpga/$slot" ] && [ -d "/sys/bus/pci/devices/$slot/kvfpga" ]; then
			pass "probe-$slot"
		else
			fail "probe-$slot" "good card not bound"
		fi
	else
		if [ ! -e "/sys/bus/pci/drivers/kvfpga/$slot" ] && dmesg | grep -q "kvfpga $slot: .*card descriptor"; then
			pass "refuse-$kind-$slot"
		else
			fail "refuse-$kind-$slot" "card with a $kind descriptor was not refused with a log line"
		fi
	fi
done

if [ "$SUITE" = smoke ]; then
	finish
fi

# `make bench` (bench/run-bench.sh): the KV append path on the real driver's
# mapping against the host emulation, both in this one boot (figure 7).
if [ "$SUITE" = bench ]; then
	check bench-kv-append "$REPO/bench/vm-bench.sh" "$OUT/bench"
	cat "$OUT/check.log"
	finish
fi

# `make fuzz-driver` (tests/fuzz/fuzz-driver.sh): suite fuzz-<seconds>[-<seed>]
# runs the uapi fuzzer alone, for longer; it checks the card still works after.
case "$SUITE" in
fuzz-*)
	spec=${SUITE#fuzz-}
	export KVFPGA_FUZZ_SECONDS=${spec%%-*}
	[ "$spec" = "${spec#*-}" ] || export KVFPGA_FUZZ_SEED=${spec#*-}
	timeout $((KVFPGA_FUZZ_SECONDS + 600)) "$VMBIN/t_fuzz" >"$OUT/t_fuzz.log" 2>&1
	rc=$?
	cat "$OUT/t_fuzz.log"
	grep -E '^(PASS|FAIL) ' "$OUT/t_fuzz.log" >>"$results"
	grep -q '^FAIL ' "$OUT/t_fuzz.log" || [ $rc -eq 0 ] || fail t_fuzz "exited with status $rc"
	finish
	;;
esac

for t in "$VMBIN"/t_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	echo "guest: running $name"
	timeout 600 "$t" >"$OUT/$name.log" 2>&1
	rc=$?
	cat "$OUT/$name.log"
	grep -E '^(PASS|FAIL) ' "$OUT/$name.log" >>"$results"
	if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$OUT/$name.log"; then
		fail "$name" "exited with status $rc and no FAIL line"
	fi
	if ! grep -qE '^(PASS|FAIL) ' "$OUT/$name.log"; then
		fail "$name" "reported no result"
	fi
done

# The library's own tests, against the real driver instead of the emulation.
for t in ${KVFPGA_VM_LIB_TESTS:-test_device test_kvcache test_kvcache_syscall test_kvcache_model}; do
	bin=$REPO/build/tests/$t
	if [ ! -x "$bin" ]; then
		fail "lib-$t-on-card" "$bin not built"
		continue
	fi
	echo "guest: running $t against the card"
	# The model-based test runs a shorter sequence here: TCG is slow.
	KVFPGA_DEVICE=0000:00:10.0 KVFPGA_TEST_OPS=20000 CK_DEFAULT_TIMEOUT=300 timeout 900 "$bin" >"$OUT/lib-$t.log" 2>&1
	rc=$?
	summary=$(grep -E '^[0-9]+%: Checks' "$OUT/lib-$t.log" | tail -n1)
	if [ $rc -eq 0 ] && [ -n "$summary" ]; then
		pass "lib-$t-on-card ($summary)"
	else
		fail "lib-$t-on-card" "exit $rc: ${summary:-no summary}; $(grep -m3 -E ':[EF]:' "$OUT/lib-$t.log" | tr '\n' ' ')"
	fi
done

for s in "$REPO"/tests/vm/s_*.sh; do
	[ -f "$s" ] || continue
	echo "guest: running $(basename "$s")"
	# shellcheck source=/dev/null
	. "$s"
done

finish
