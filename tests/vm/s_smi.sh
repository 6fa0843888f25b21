# shellcheck shell=bash
# Sourced by guest.sh: kvfpga-smi against the real driver.  Two holder
# processes take buffers through the raw uapi (python3 + ioctl, so the
# figures are known independently of libkvfpga): A holds 3 MiB + 1 MiB
# (exported as a dma-buf, so shared) on one fd and 2 MiB on a second fd
# that is also dup'ed; B holds 5 MiB on the second card.  kvfpga-smi must
# list each on the right card with exactly that memory, count the dup'ed
# fd once, agree with sysfs, parse as JSON, and forget both once they exit.
smi=$REPO/build/bin/kvfpga-smi
smi_main=0000:00:10.0 smi_second=0000:00:12.0
# PoCL needs a writable cache directory to offer its device, and the guest's
# HOME (/) is the host's read-only root.
smi_pocl=/tmp/smi-pocl-cache

smi_node_of() { # device node of the card in PCI slot $1
	local n
	for n in /sys/class/accel/accel* /sys/class/drm/renderD*; do
		[ -e "$n/device" ] || continue
		[ "$(basename "$(readlink "$n/device")")" = "$1" ] || continue
		case "$n" in
		*/accel/*) echo "/dev/accel/$(basename "$n")" ;;
		*) echo "/dev/dri/$(basename "$n")" ;;
		esac
		return 0
	done
	return 1
}

# usage: smi_holder.py READY_FILE NODE SPEC...   SPEC = <fd>:<MiB>[x] (a buffer
# on the open file named <fd>; x: also exported as a dma-buf) or dup:<fd> (a
# second fd for that file).  Allocates, writes READY_FILE, sleeps.
cat >/tmp/smi_holder.py <<'EOF'
import fcntl, os, signal, struct, sys

def iowr(nr, size):  # _IOWR('d', nr, size)
    return (3 << 30) | (size << 16) | (ord('d') << 8) | nr

BO_CREATE = iowr(0x40 + 0x02, 32)      # struct drm_kvfpga_bo_create
PRIME_HANDLE_TO_FD = iowr(0x2d, 12)    # struct drm_prime_handle
ready, node, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
fds, keep = {}, []
for spec in specs:
    if spec.startswith("dup:"):
        keep.append(os.dup(fds[spec[4:]]))
        continue
    name, size = spec.split(":")
    export = size.endswith("x")
    if name not in fds:
        fds[name] = os.open(node, os.O_RDWR)
    buf = bytearray(struct.pack("<QIIQQ", int(size.rstrip("x")) << 20, 0, 0, 0, 0))
    fcntl.ioctl(fds[name], BO_CREATE, buf, True)
    handle = struct.unpack("<QIIQQ", buf)[2]
    if export:
        pbuf = bytearray(struct.pack("<IIi", handle, os.O_CLOEXEC | os.O_RDWR, -1))
        fcntl.ioctl(fds[name], PRIME_HANDLE_TO_FD, pbuf, True)
        keep.append(struct.unpack("<IIi", pbuf)[2])
with open(ready, "w") as f:
    f.write("%d\n" % os.getpid())
signal.pause()
EOF

# usage: smi_check.py JSON_FILE SLOT_A PID_A SLOT_B PID_B N_CL_DEVICES  (checks the report)
cat >/tmp/smi_check.py <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
slot_a, pid_a, slot_b, pid_b = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
MiB = 1 << 20
cards = {c["pci_slot"]: c for c in doc["cards"]}
problems = []
def expect(what, got, want):
    if got != want:
        problems.append("%s: %r, want %r" % (what, got, want))
def sysfs(slot, attr):
    return int(open("/sys/bus/pci/devices/%s/kvfpga/%s" % (slot, attr)).read())
for slot in (slot_a, slot_b):
    if slot not in cards:
        problems.append("card %s not listed (have %s)" % (slot, sorted(cards)))
if not problems:
    a, b = cards[slot_a], cards[slot_b]
    pa = {p["pid"]: p for p in a["processes"]}
    pb = {p["pid"]: p for p in b["processes"]}
    expect("card A processes", sorted(pa), [pid_a])
    expect("card B processes", sorted(pb), [pid_b])
    if pid_a in pa:
        expect("A mem_total", pa[pid_a]["mem_total"], 6 * MiB)
        expect("A mem_shared", pa[pid_a]["mem_shared"], 1 * MiB)
        expect("A clients", pa[pid_a]["clients"], 2)
        expect("A name", pa[pid_a]["name"], "python3")
    if pid_b in pb:
        expect("B mem_total", pb[pid_b]["mem_total"], 5 * MiB)
        expect("B mem_shared", pb[pid_b]["mem_shared"], 0)
        expect("B clients", pb[pid_b]["clients"], 1)
    expect("A mem_used", a["mem_used"], 6 * MiB)
    expect("A mem_used vs sysfs", a["mem_used"], sysfs(slot_a, "mem_used"))
    expect("A bo_count", a["bo_count"], 3)
    expect("B mem_used", b["mem_used"], 5 * MiB)
    expect("A mem_total vs sysfs", a["mem_total"], sysfs(slot_a, "mem_total"))
    expect("A serial", a["serial"], "SIM0")
    expect("A abi", a["abi"], "1.0")
    expect("all processes visible (root)", doc["all_processes_visible"], True)
    # The OpenCL devices are the ones clinfo sees (the count it printed), and
    # PoCL, a dependency of the project, offers at least one.
    cl = doc.get("opencl", {})
    if int(sys.argv[6]) < 1:
        problems.append("clinfo -l lists no OpenCL device (see smi-clinfo.log)")
    expect("OpenCL devices (clinfo -l counts %s)" % sys.argv[6], len(cl.get("devices", [])),
           int(sys.argv[6]))
    if cl.get("devices") and any(d["usable"] for d in cl["devices"]) and cl.get("selected") is None:
        problems.append("no OpenCL device selected: %s" % cl.get("selected_error"))
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF

smi_wait_ready() { # file pid: until the holder wrote the file (or died)
	for _ in $(seq 300); do
		[ -s "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

smi_node_a=$(smi_node_of $smi_main)
smi_node_b=$(smi_node_of $smi_second)
rm -f /tmp/smi-ready-a /tmp/smi-ready-b
smi_pid_a="" smi_pid_b=""
if [ -z "$smi_node_a" ] || [ -z "$smi_node_b" ]; then
	fail smi-holders-start "no node for $smi_main or $smi_second"
else
	python3 /tmp/smi_holder.py /tmp/smi-ready-a "$smi_node_a" fd1:3 fd1:1x fd2:2 dup:fd2 \
		>"$OUT/smi-holder-a.log" 2>&1 &
	smi_pid_a=$!
	python3 /tmp/smi_holder.py /tmp/smi-ready-b "$smi_node_b" fd1:5 >"$OUT/smi-holder-b.log" 2>&1 &
	smi_pid_b=$!
	if smi_wait_ready /tmp/smi-ready-a "$smi_pid_a" && smi_wait_ready /tmp/smi-ready-b "$smi_pid_b"; then
		pass smi-holders-start
	else
		fail smi-holders-start "$(tail -n 2 "$OUT"/smi-holder-*.log | tr '\n' ' ')"
	fi
fi

if [ -s /tmp/smi-ready-a ] && [ -s /tmp/smi-ready-b ]; then
	if POCL_CACHE_DIR=$smi_pocl "$smi" --json >"$OUT/smi.json" 2>"$OUT/smi.err" &&
		python3 -m json.tool "$OUT/smi.json" >/dev/null 2>>"$OUT/smi.err"; then
		pass smi-json-parses
	else
		fail smi-json-parses "$(head -n 3 "$OUT/smi.err" | tr '\n' ' ')"
	fi
	POCL_CACHE_DIR=$smi_pocl clinfo -l >"$OUT/smi-clinfo.log" 2>&1
	smi_n_cl=$(grep -c 'Device #' "$OUT/smi-clinfo.log")
	if python3 /tmp/smi_check.py "$OUT/smi.json" $smi_main "$smi_pid_a" $smi_second "$smi_pid_b" \
		"$smi_n_cl" >"$OUT/smi-check.log" 2>&1; then
		pass smi-lists-holders-with-their-memory
	else
		fail smi-lists-holders-with-their-memory "$(head -n 4 "$OUT/smi-check.log" | tr '\n' ';')"
	fi
	# The human-readable table: holder A's line on card A with 6.0 MiB.
	POCL_CACHE_DIR=$smi_pocl "$smi" >"$OUT/smi.txt" 2>&1
	smi_card_a=$(awk -v s=$smi_main '$2 == s { print $1 }' "$OUT/smi.txt")
	if [ -n "$smi_card_a" ] &&
		awk -v c="$smi_card_a" -v p="$smi_pid_a" '$1 == c && $2 == p && $3 == "python3" && $4 == 2 && $5 == "6.0" && $6 == "MiB" { ok = 1 } END { exit !ok }' "$OUT/smi.txt"; then
		pass smi-text-lists-holder
	else
		fail smi-text-lists-holder "no line 'card $smi_card_a pid $smi_pid_a python3 2 6.0 MiB' in $OUT/smi.txt"
	fi
	# Another user sees the cards but not root's processes, and says so.
	if setpriv --reuid=65534 --regid=65534 --clear-groups "$smi" --json --no-opencl \
		>"$OUT/smi-nobody.json" 2>&1 &&
		python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
procs = [p for c in d["cards"] for p in c["processes"]]
ok = d["all_processes_visible"] is False and not procs and "opencl" not in d
ok = ok and any(c["pci_slot"] == sys.argv[2] and c["mem_used"] == 6 << 20 for c in d["cards"])
sys.exit(0 if ok else 1)' "$OUT/smi-nobody.json" $smi_main; then
		pass smi-unprivileged-sees-cards-not-processes
	else
		fail smi-unprivileged-sees-cards-not-processes "see $OUT/smi-nobody.json"
	fi
fi

[ -z "$smi_pid_a" ] || kill "$smi_pid_a" 2>/dev/null
[ -z "$smi_pid_b" ] || kill "$smi_pid_b" 2>/dev/null
[ -z "$smi_pid_a" ] || wait "$smi_pid_a" 2>/dev/null
[ -z "$smi_pid_b" ] || wait "$smi_pid_b" 2>/dev/null

# Gone: no process listed, the memory back (the dma-buf went with A).
if "$smi" --json --no-opencl >"$OUT/smi-after.json" 2>&1 && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
ok = all(not c["processes"] for c in d["cards"])
ok = ok and all(c["mem_used"] == 0 for c in d["cards"] if c["pci_slot"] in sys.argv[2:])
sys.exit(0 if ok else 1)' "$OUT/smi-after.json" $smi_main $smi_second; then
	pass smi-forgets-exited-processes
else
	fail smi-forgets-exited-processes "see $OUT/smi-after.json"
fi

# Watch mode: --count reports, one JSON document per line.
if "$smi" --json --no-opencl --loop 0.2 --count 3 >"$OUT/smi-loop.json" 2>&1 &&
	[ "$(wc -l <"$OUT/smi-loop.json")" -eq 3 ] &&
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    json.loads(line)["cards"]' "$OUT/smi-loop.json"; then
	pass smi-loop-count-json-lines
else
	fail smi-loop-count-json-lines "see $OUT/smi-loop.json"
fi

# Bad usage is refused with status 2; --help succeeds.
"$smi" --loop 0 >/dev/null 2>&1
smi_rc1=$?
"$smi" --count 2 >/dev/null 2>&1
smi_rc2=$?
if [ $smi_rc1 -eq 2 ] && [ $smi_rc2 -eq 2 ] && "$smi" --help | grep -q -- '--loop SECONDS'; then
	pass smi-usage
else
	fail smi-usage "--loop 0 gave $smi_rc1, --count without --loop gave $smi_rc2 (want 2 and 2)"
fi
rm -rf /tmp/smi_holder.py /tmp/smi_check.py /tmp/smi-ready-a /tmp/smi-ready-b "$smi_pocl"
