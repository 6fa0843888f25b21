# shellcheck shell=bash
# Sourced by guest.sh: every kind of broken card descriptor is refused with
# a log line, and the same card binds once its descriptor is good.  The
# descriptor is written through the unbound device's BAR (sysfs resource2).
bad=0000:00:11.0
res=/sys/bus/pci/devices/$bad/resource2
mkcard=$REPO/build/bin/kvfpga-mkcard
for kind in magic crc version granule size range flags; do
	before=$(dmesg | grep -c "kvfpga $bad: card descriptor")
	"$mkcard" --keep --size 16M --corrupt "$kind" "$res"
	if echo "$bad" >/sys/bus/pci/drivers/kvfpga/bind 2>/dev/null; then
		fail "descriptor-refused-$kind" "bound with a $kind-broken descriptor"
		echo "$bad" >/sys/bus/pci/drivers/kvfpga/unbind
	elif [ "$(dmesg | grep -c "kvfpga $bad: card descriptor")" -gt "$before" ]; then
		pass "descriptor-refused-$kind"
	else
		fail "descriptor-refused-$kind" "refused without a log line"
	fi
done
"$mkcard" --keep --size 16M --serial FIXED "$res"
if echo "$bad" >/sys/bus/pci/drivers/kvfpga/bind && [ "$(cat "/sys/bus/pci/devices/$bad/kvfpga/card_serial")" = FIXED ]; then
	pass descriptor-repaired-card-binds
else
	fail descriptor-repaired-card-binds "card with a good descriptor did not bind"
fi
