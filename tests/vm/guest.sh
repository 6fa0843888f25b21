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
# lib_test TEST [VAR=VALUE...]: runs build/tests/TEST (Check) on card
# 0000:00:10.0 with the extra environment; one PASS/FAIL line with Check's
# summary and the time it took.
lib_test() {
	local t=$1 bin=$REPO/build/tests/$1 rc summary start secs why
	shift
	if [ ! -x "$bin" ]; then
		fail "lib-$t-on-card" "$bin not built"
		return 1
	fi
	echo "guest: running $t against the card"
	start=$(date +%s)
	env KVFPGA_DEVICE=0000:00:10.0 CK_DEFAULT_TIMEOUT=300 "$@" timeout 900 "$bin" >"$OUT/lib-$t.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	summary=$(grep -E '^[0-9]+%: Checks' "$OUT/lib-$t.log" | tail -n1)
	if [ $rc -eq 0 ] && [ -n "$summary" ]; then
		pass "lib-$t-on-card ($summary; ${secs}s)"
	else
		# Check's failure lines, or (when it never ran) the program's last words.
		why=$(grep -m3 -E ':[EF]:' "$OUT/lib-$t.log")
		[ -n "$why" ] || why=$(tail -n 2 "$OUT/lib-$t.log")
		fail "lib-$t-on-card" "exit $rc after ${secs}s: ${summary:-no summary}; $(tr '\n' ' ' <<<"$why")"
		return 1
	fi
}

for t in ${KVFPGA_VM_LIB_TESTS:-test_device test_kvcache test_kvcache_syscall test_kvcache_model}; do
	# The model-based test runs a shorter sequence here: TCG is slow.
	lib_test "$t" KVFPGA_TEST_OPS=20000
done

# Attention with its K/V arenas in card memory (buffer objects mapped from
# the card's BAR): OpenCL reads the card mapping in place.  Only the
# "attention" case, its loops narrowed to three configurations, because
# each is a program that PoCL compiles under TCG (30-70 s, plus its kernels
# at their first launch; the fixed cases need the first two anyway): f32
# GQA 4 and 1, f16 GQA 8; short and long decode (f32 and f16), prefill (long on f32),
# decode = prefill on f32 and f16, a host rewrite of the arena between
# launches (zero copy), jobs and argument checks.  Each program is built
# once per boot (the engine keeps it for every case), into caches of its
# own in the tmpfs: a root-owned /tmp/.cache/pocl would leave PoCL without
# a device for the unprivileged demo in s_udev.sh.  Per-case times go to
# the XML log.
attn_configs=h128-g4-f32-b16,h64-g1-f32-b16,h96-g8-f16-b8
if lib_test test_attention KVFPGA_TEST_ARENA=card CK_RUN_CASE=attention \
	KVFPGA_TEST_ATTN_CONFIGS=$attn_configs XDG_CACHE_HOME=/tmp/attn-cache \
	POCL_CACHE_DIR=/tmp/attn-cache/pocl CK_XML_LOG_FILE_NAME="$OUT/lib-test_attention.xml"; then
	# The arenas really were on this card, not the emulation.
	if grep -q '^test_attention: K/V arenas in card memory on card 0000:00:10.0 ' "$OUT/lib-test_attention.log"; then
		pass attention-arenas-in-card-memory
	else
		fail attention-arenas-in-card-memory "$(grep -m1 'K/V arenas' "$OUT/lib-test_attention.log")"
	fi
fi
grep '^test_attention:' "$OUT/lib-test_attention.log" 2>/dev/null

# A KV cache filled through its own API in card memory, int8 with its
# per-block scales, read by the kernels: decode over six sequences (one a
# copy-on-write fork) and a mid-block prefill against a double reference.
# One configuration (one program build) for the TCG budget; the host run has
# f32, f16 and more shapes.
lib_test test_attention_kvcache KVFPGA_TEST_ATTN_CONFIGS=h128-g4-i8-b16 \
	XDG_CACHE_HOME=/tmp/attn-cache POCL_CACHE_DIR=/tmp/attn-cache/pocl

for s in "$REPO"/tests/vm/s_*.sh; do
	[ -f "$s" ] || continue
	echo "guest: running $(basename "$s")"
	# shellcheck source=/dev/null
	. "$s"
done

finish
