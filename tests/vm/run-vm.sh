#!/usr/bin/env bash
# run-vm.sh: boot one Debian kernel under QEMU (TCG) with ivshmem stand-in
# cards, run the in-VM suite (guest.sh), and judge the result:
#   - every test line PASS, at least one test ran;
#   - dmesg and the console free of WARNING, BUG, Oops, GPF, lockdep,
#     hung-task, UBSAN/KASAN and panic reports;
#   - no taint beyond O (out-of-tree) and E (unsigned module);
#   - the guest finished before the timeout.
# Prints "vm[<kernel>]: N passed, N failed" and exits non-zero on failure.
#
# usage: run-vm.sh --kernel KVER [--module KO] [--suite SUITE]
#                  [--out DIR] [--card-mem SIZE] [--timeout SECONDS]
#   SUITE: full (default), smoke, bench (figure 7 of make bench) or
#   fuzz-SECONDS[-SEED] (make fuzz-driver); KVER names /boot/vmlinuz-KVER.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

kver="" module="" suite=full out="" card_mem=${KVFPGA_VM_CARD_MEM:-256M} timeout=${KVFPGA_VM_TIMEOUT:-1500}
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kver=$2; shift 2 ;;
	--module) module=$2; shift 2 ;;
	--suite) suite=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--card-mem) card_mem=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "run-vm: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done
[ -n "$kver" ] || { echo "run-vm: --kernel is required" >&2; exit 2; }
[ -n "$module" ] || module=$repo/build/module/$kver/driver/kvfpga.ko
[ -n "$out" ] || out=$repo/build/vm/$kver-$suite
vmlinuz=/boot/vmlinuz-$kver
for f in "$vmlinuz" "$module" "$repo/build/bin/kvfpga-mkcard" "$repo/build/vmhost/kvfpga-vm-agent"; do
	[ -e "$f" ] || { echo "run-vm: missing $f" >&2; exit 1; }
done

initrd=$repo/build/vm/initrd-$kver.gz
if [ ! -s "$initrd" ] || [ "$here/init" -nt "$initrd" ] || [ "$here/mkinitrd.sh" -nt "$initrd" ]; then
	mkdir -p "$(dirname "$initrd")"
	"$here/mkinitrd.sh" "$kver" "$initrd"
fi

rm -rf "$out"
mkdir -p "$out"
shm=$(mktemp -d /dev/shm/kvfpga-vm.XXXXXX)
agent_pid=""
cleanup() {
	[ -z "$agent_pid" ] || kill "$agent_pid" 2>/dev/null || true
	rm -rf "$shm"
}
trap cleanup EXIT

# The cards: a good one (the main test card), one whose descriptor is
# corrupt (must be refused), and a second good one (several cards at once).
# Slots are fixed by addr= so the guest knows which is which.
cards=("0000:00:10.0=good:$card_mem" "0000:00:11.0=crc:16M" "0000:00:12.0=good:64M")
qemu_cards=() agent_cards=() guest_cards=""
n=0
for c in "${cards[@]}"; do
	slot=${c%%=*} rest=${c#*=}
	kind=${rest%%:*} size=${rest#*:}
	file=$shm/card$n
	if [ "$kind" = good ]; then
		"$repo/build/bin/kvfpga-mkcard" --size "$size" --name "kvfpga-sim" --serial "SIM$n" "$file"
	else
		"$repo/build/bin/kvfpga-mkcard" --size "$size" --corrupt "$kind" "$file"
	fi
	dev=$(printf '%x' $((0x10 + n)))
	qemu_cards+=(-object "memory-backend-file,id=card$n,share=on,mem-path=$file,size=$size"
		-device "ivshmem-plain,memdev=card$n,addr=0x$dev")
	agent_cards+=("$slot=$file")
	guest_cards+="$slot=$kind:$size "
	n=$((n + 1))
done

"$repo/build/vmhost/kvfpga-vm-agent" "$out" "${agent_cards[@]}" &
agent_pid=$!

echo "run-vm: $kver, suite $suite, module $module"
start=$(date +%s)
set +e
timeout --foreground -k 10 "$timeout" qemu-system-x86_64 \
	-machine pc -cpu max -smp 2 -m 2048 -nographic -no-reboot \
	-kernel "$vmlinuz" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 quiet loglevel=4 KVFPGA_REPO=$repo KVFPGA_SUITE=$suite KVFPGA_MODULE=$module KVFPGA_CARDS=\"${guest_cards% }\"" \
	"${qemu_cards[@]}" \
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
	-virtfs "local,path=$repo,mount_tag=repo,security_model=none,readonly=on,multidevs=remap" \
	-virtfs "local,path=$out,mount_tag=out,security_model=none" \
	-nic none </dev/null >"$out/console.log" 2>&1
qemu_rc=$?
set -e
elapsed=$(( $(date +%s) - start ))

problems=()
[ $qemu_rc -ne 124 ] || problems+=("guest hung: killed after ${timeout}s")
[ -e "$out/done" ] || problems+=("guest did not finish (qemu exit $qemu_rc)")

# Kernel reports that fail the run wherever they appear.
bad_re='WARNING:|BUG:|Oops|general protection fault|possible circular locking|possible recursive locking|inconsistent lock state|lockdep|INFO: task .* blocked for more than|Kernel panic|UBSAN:|KASAN:|rcu_sched self-detected|Call Trace:'
for log in "$out/dmesg.txt" "$out/console.log"; do
	[ -e "$log" ] || continue
	if grep -Eq "$bad_re" "$log"; then
		problems+=("kernel report in $(basename "$log"): $(grep -Em1 "$bad_re" "$log")")
	fi
done
if [ -e "$out/tainted" ]; then
	taint=$(cat "$out/tainted")
	# 4096 = O (out-of-tree module), 8192 = E (unsigned module)
	if [ $((taint & ~(4096 | 8192))) -ne 0 ]; then
		problems+=("kernel tainted: mask $taint")
	fi
fi

passed=0 failed=0
if [ -e "$out/results.txt" ]; then
	passed=$(grep -c '^PASS ' "$out/results.txt" || true)
	failed=$(grep -c '^FAIL ' "$out/results.txt" || true)
	grep '^FAIL ' "$out/results.txt" | sed "s/^/run-vm: [$kver] /" || true
fi
[ "$passed" -gt 0 ] || problems+=("no test passed")
for p in "${problems[@]}"; do
	echo "run-vm: [$kver] $p"
done
echo "run-vm: [$kver] guest log: $out/console.log, dmesg: $out/dmesg.txt (${elapsed}s)"
echo "vm[$kver]: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#problems[@]} -eq 0 ]
