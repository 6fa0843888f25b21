# shellcheck shell=bash
# Sourced by guest.sh, last: the main card is removed while the uapi fuzzer
# and inference runs (K/V cache in the card, attention on PoCL) are using it.
# The processes may fail or get SIGBUS; the kernel must stay clean (the host
# checks dmesg), they must all end, and after a rescan the card must be
# whole again.  Reuses the demo model and caches s_udev.sh left in /tmp/demo.
slot=0000:00:10.0
ul=/tmp/unplug-load
mkdir -p "$ul"
[ -s /tmp/demo/m.bin ] || "$VMBIN/../bin/kvfpga-genmodel" --preset tiny --seed 3 -q -o /tmp/demo/m.bin -t /tmp/demo/t.bin
(
	for _ in $(seq 50); do
		XDG_CACHE_HOME=/tmp/demo/cache "$VMBIN/../bin/kvfpga-run" -m /tmp/demo/m.bin \
			-z /tmp/demo/t.bin -p "Once upon a time" -n 48 --temp 0 --attention card \
			--card "$slot" -q >/dev/null 2>>"$ul/run.err" || break
	done
) &
run_pid=$!
# No fault injection here: fail_nth is device-wide and would fail the
# inference runs' own calls.
KVFPGA_FUZZ_SECONDS=60 KVFPGA_FUZZ_WORKERS=2 KVFPGA_FUZZ_FAULTS=0 "$VMBIN/t_fuzz" >"$ul/fuzz.log" 2>&1 &
fuzz_pid=$!
sleep 8
if ! kill -0 "$run_pid" 2>/dev/null || ! kill -0 "$fuzz_pid" 2>/dev/null; then
	fail unplug-under-load "the load ended before the removal: $(tail -n 2 "$ul/run.err" "$ul/fuzz.log" | tr '\n' ' ')"
	kill "$run_pid" "$fuzz_pid" 2>/dev/null
	wait 2>/dev/null
elif echo 1 >"/sys/bus/pci/devices/$slot/remove"; then
	ended=1
	for pid in $run_pid $fuzz_pid; do
		for _ in $(seq 120); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		if kill -0 "$pid" 2>/dev/null; then
			ended=0
			pkill -9 -P "$pid" 2>/dev/null; kill -9 "$pid" 2>/dev/null
		fi
	done
	wait 2>/dev/null
	echo 1 >/sys/bus/pci/rescan
	for _ in $(seq 100); do
		[ -e "/sys/bus/pci/devices/$slot/kvfpga/mem_used" ] && break
		sleep 0.1
	done
	used=$(cat "/sys/bus/pci/devices/$slot/kvfpga/mem_used" 2>/dev/null || echo none)
	if [ $ended -eq 0 ]; then
		fail unplug-under-load "a process using the card did not end within 2 minutes of the removal"
	elif [ "$used" != 0 ]; then
		fail unplug-under-load "after rescan the card shows mem_used $used"
	elif ! "$VMBIN/../bin/kvfpga-info" --device "$slot" >"$ul/info.log" 2>&1; then
		fail unplug-under-load "card unusable after rescan: $(head -n 1 "$ul/info.log")"
	else
		pass unplug-under-load
	fi
else
	fail unplug-under-load "remove failed"
	kill "$run_pid" "$fuzz_pid" 2>/dev/null
	wait 2>/dev/null
fi
