# shellcheck shell=bash
# Sourced by guest.sh after the C tests: module unload refused while in use,
# clean when not, and a load/unload loop.  Uses pass/fail/check/$MODULE.

bind_stand_ins() {
	echo "1af4 1110" >/sys/bus/pci/drivers/kvfpga/new_id 2>/dev/null
	for _ in $(seq 50); do
		[ -e /sys/bus/pci/drivers/kvfpga/0000:00:10.0 ] && return 0
		sleep 0.1
	done
	return 1
}

node_of() { # the device node of the card in slot $1
	local n
	for n in /sys/class/accel/accel* /sys/class/drm/renderD*; do
		[ -e "$n/device" ] || continue
		if [ "$(basename "$(readlink "$n/device")")" = "$1" ]; then
			case "$n" in
			*/accel/*) echo "/dev/accel/$(basename "$n")" ;;
			*) echo "/dev/dri/$(basename "$n")" ;;
			esac
			return 0
		fi
	done
	return 1
}

node=$(node_of 0000:00:10.0)
if [ -n "$node" ]; then
	exec 3<>"$node"
	if rmmod kvfpga 2>/dev/null; then
		fail module-unload-refused-in-use "rmmod succeeded with $node open"
		insmod "$MODULE"; bind_stand_ins
	else
		pass module-unload-refused-in-use
	fi
	exec 3>&-
else
	fail module-unload-refused-in-use "no node for 0000:00:10.0"
fi

loop_ok=1
for i in $(seq 20); do
	if ! rmmod kvfpga; then loop_ok=0; echo "iteration $i: rmmod failed"; break; fi
	if ! insmod "$MODULE"; then loop_ok=0; echo "iteration $i: insmod failed"; break; fi
	if ! bind_stand_ins; then loop_ok=0; echo "iteration $i: card did not bind"; break; fi
done
if [ $loop_ok -eq 1 ] && [ -n "$(node_of 0000:00:10.0)" ]; then
	pass module-load-unload-loop-20
else
	fail module-load-unload-loop-20 "see console log"
fi
