#!/usr/bin/env bash
# Run Check test programs and add up their results.  Each program prints
# Check's own summary ("NN%: Checks: N, Failures: N, Errors: N"); this
# prints one total line and fails if any program failed or counted nothing.
set -uo pipefail

total=0 failed=0 bad_progs=()
for prog in "$@"; do
	log=$(mktemp)
	CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120} "$prog" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	summary=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -n1)
	rm -f "$log"
	if [ -z "$summary" ]; then
		echo "FAIL: $prog printed no Check summary (exit $rc)"
		bad_progs+=("$prog"); failed=$((failed + 1)); continue
	fi
	checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$summary")
	fails=$(sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1+\2/' <<<"$summary")
	fails=$((fails))
	total=$((total + checks)); failed=$((failed + fails))
	if [ "$rc" -ne 0 ] || [ "$fails" -ne 0 ] || [ "$checks" -eq 0 ]; then
		bad_progs+=("$prog")
		[ "$fails" -ne 0 ] || failed=$((failed + 1))
	fi
done
echo "unit: $((total - failed > 0 ? total - failed : 0)) passed, $failed failed"
if [ ${#bad_progs[@]} -ne 0 ]; then
	echo "unit: failing programs: ${bad_progs[*]}" >&2
	exit 1
fi
[ "$total" -gt 0 ] || { echo "unit: no tests ran" >&2; exit 1; }
