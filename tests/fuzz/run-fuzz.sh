#!/usr/bin/env bash
# Run or replay the libFuzzer targets built by tests/fuzz/fuzz.mk.
#
#   run-fuzz.sh run DIR TARGET...     fuzz each target for $FUZZ_SECONDS s
#                                     (seed $FUZZ_SEED if set), corpus in
#                                     DIR/corpus/TARGET, seeds from DIR/seeds
#   run-fuzz.sh replay DIR TARGET...  run each target once on every input in
#                                     tests/fuzz/regressions/TARGET/
#
# Prints one line per target (executions, corpus size, result) and fails on
# the first crash, leak, timeout or violated property, naming the input that
# caused it (a new regression input: add it to tests/fuzz/regressions/TARGET/
# once the bug is fixed).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=$1 dir=$2
shift 2
export KVFPGA_FUZZ_TOKENIZER=$dir/seeds/vocab/encode.tok
export KVFPGA_FUZZ_GGUF=$dir/seeds/vocab/encode.gguf
# Leaks count as failures; every input is small, so 20 s means a hang, and
# a single allocation above 64 MiB means a size taken from the file unchecked.
common=(-rss_limit_mb=2048 -malloc_limit_mb=64 -timeout=20 -detect_leaks=1)
status=0 total=0

for t in "$@"; do
	bin=$dir/fuzz_$t
	[ -x "$bin" ] || { echo "fuzz[$t]: $bin not built" >&2; exit 1; }
	log=$dir/logs/$t-$mode.log
	mkdir -p "$dir/logs"
	if [ "$mode" = replay ]; then
		inputs=()
		for f in "$here/regressions/$t"/*; do [ -f "$f" ] && inputs+=("$f"); done
		if [ ${#inputs[@]} -eq 0 ]; then
			echo "fuzz[$t]: no regression inputs"
			continue
		fi
		if "$bin" "${common[@]}" "${inputs[@]}" >"$log" 2>&1; then
			echo "fuzz[$t]: ${#inputs[@]} regression inputs replayed, all clean"
		else
			echo "fuzz[$t]: FAIL replaying regressions (log $log):"
			grep -E 'ERROR|SUMMARY|property violated|Running:' "$log" | tail -n 5
			status=1
		fi
		continue
	fi
	corpus=$dir/corpus/$t artifacts=$dir/artifacts/$t
	mkdir -p "$corpus" "$artifacts"
	extra=()
	[ -f "$here/$t.dict" ] && extra+=(-dict="$here/$t.dict")
	[ -n "${FUZZ_SEED:-}" ] && extra+=(-seed="$FUZZ_SEED")
	"$bin" "${common[@]}" "${extra[@]}" -max_total_time="${FUZZ_SECONDS:-60}" \
		-print_final_stats=1 -artifact_prefix="$artifacts/" \
		"$corpus" "$dir/seeds/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -n1)
	seed=$(sed -nE 's/^INFO: Seed: ([0-9]+).*/\1/p' "$log" | head -n1)
	units=$(find "$corpus" -type f | wc -l)
	total=$((total + ${execs:-0}))
	if [ $rc -eq 0 ]; then
		echo "fuzz[$t]: ${execs:-?} executions in ${FUZZ_SECONDS:-60} s, corpus $units inputs (libFuzzer seed $seed), no failure"
	else
		echo "fuzz[$t]: FAIL (exit $rc, libFuzzer seed $seed; log $log):"
		grep -E 'ERROR|SUMMARY|property violated|Test unit written' "$log" | tail -n 6
		status=1
	fi
done
[ "$mode" = run ] && echo "fuzz: $total executions in all"
exit $status
