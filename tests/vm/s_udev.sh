# shellcheck shell=bash
# Sourced by guest.sh: the udev rule with the real systemd-udevd from the
# host's userland.  /etc is the host's (read-only), so the test group and
# users are bind-mounted copies of passwd/group, and the rule goes to
# /run/udev/rules.d.  Checks group/mode/symlink, that a member of the group
# can use the card and that another user cannot open it.
udev_gid=4242 member_uid=4242 outsider_uid=4243
cp /etc/group /tmp/group && echo "kvfpga:x:$udev_gid:kvtest" >>/tmp/group
cp /etc/passwd /tmp/passwd &&
	echo "kvtest:x:$member_uid:$udev_gid::/tmp:/bin/sh" >>/tmp/passwd &&
	echo "kvout:x:$outsider_uid:$outsider_uid::/tmp:/bin/sh" >>/tmp/passwd
mount --bind /tmp/group /etc/group
mount --bind /tmp/passwd /etc/passwd
mkdir -p /run/udev/rules.d
cp "$REPO/udev/72-kvfpga.rules" /run/udev/rules.d/
# systemd tools refuse to act in a chroot unless told this is intended.
export SYSTEMD_IGNORE_CHROOT=1
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1
udevadm trigger --action=add --subsystem-match=accel --subsystem-match=drm >/dev/null 2>&1
udevadm settle --timeout=60

link=/dev/kvfpga/0000:00:10.0
if [ -L "$link" ]; then
	node=$(readlink -f "$link")
	perm=$(stat -c '%a %G' "$node")
	if [ "$perm" = "660 kvfpga" ]; then
		pass udev-node-group-mode-symlink
	else
		fail udev-node-group-mode-symlink "$node is '$perm', want '660 kvfpga'"
	fi
	# No "uaccess" tag: 73-seat-late.rules would give the active local
	# session's user an ACL (Debian's 70-uaccess.rules tags render nodes).
	current_tags=$(udevadm info --query=property "$node" | sed -n 's/^CURRENT_TAGS=//p')
	case "$current_tags" in
	*:uaccess:*) fail udev-no-seat-acl-tag "$node has tags '$current_tags'" ;;
	*) pass udev-no-seat-acl-tag ;;
	esac
	if setpriv --reuid=$member_uid --regid=$udev_gid --init-groups "$VMBIN/../bin/kvfpga-info" --device "$link" >"$OUT/udev-member.log" 2>&1; then
		pass udev-group-member-uses-card
	else
		fail udev-group-member-uses-card "$(head -n 2 "$OUT/udev-member.log" | tr '\n' ' ')"
	fi
	if setpriv --reuid=$outsider_uid --regid=$outsider_uid --clear-groups "$VMBIN/../bin/kvfpga-info" --device "$link" >"$OUT/udev-outsider.log" 2>&1; then
		fail udev-outsider-cannot-open "a user outside the group used $node"
	elif grep -qi "permission denied" "$OUT/udev-outsider.log"; then
		pass udev-outsider-cannot-open
	else
		fail udev-outsider-cannot-open "failed, but not for permissions: $(head -n 1 "$OUT/udev-outsider.log")"
	fi
else
	fail udev-node-group-mode-symlink "no $link"
	# What udev saw, for the log.
	ls -la /dev/accel /dev/dri /dev/kvfpga 2>&1
	for n in /dev/accel/accel0 /dev/dri/renderD128; do
		[ -e "$n" ] && udevadm info --attribute-walk "$n" 2>&1 | head -n 30
	done
	pgrep -a udevd || echo "udevd not running"
fi

# The inference demo as that member of the group: K/V cache in the card's
# memory, attention on PoCL; greedy output must equal the emulated card's.
demo_dir=/tmp/demo
mkdir -p "$demo_dir" && chmod 777 "$demo_dir"
"$VMBIN/../bin/kvfpga-genmodel" --preset tiny --seed 3 -q -o "$demo_dir/m.bin" -t "$demo_dir/t.bin"
run_demo() { # run_demo OUTFILE ARGS...: kvfpga-run as the group member
	local outfile=$1; shift
	setpriv --reuid=$member_uid --regid=$udev_gid --init-groups env HOME="$demo_dir" \
		XDG_CACHE_HOME="$demo_dir/cache" "$VMBIN/../bin/kvfpga-run" -m "$demo_dir/m.bin" \
		-z "$demo_dir/t.bin" -p "Once upon a time" -n 48 --temp 0 --attention card -q "$@" \
		>"$outfile" 2>"$outfile.err"
}
# The slot without its domain, as kvfpga_open_opts_set_device accepts it.
if run_demo "$OUT/demo-card.txt" --card 00:10.0 && run_demo "$OUT/demo-emu.txt" --emulate; then
	if [ -s "$OUT/demo-card.txt" ] && cmp -s "$OUT/demo-card.txt" "$OUT/demo-emu.txt"; then
		pass demo-as-group-member-card-equals-emulation
	else
		fail demo-as-group-member-card-equals-emulation "outputs differ or are empty"
	fi
else
	fail demo-as-group-member-card-equals-emulation "$(cat "$OUT"/demo-*.txt.err | head -n 3 | tr '\n' ' ')"
fi
udevadm control --exit 2>/dev/null || true
umount /etc/passwd /etc/group 2>/dev/null || true
