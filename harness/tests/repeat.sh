#!/usr/bin/env bash
# harness/tests/repeat.sh N [selftest arguments...] — run the self-test N times in a row and count,
# for every expectation (a TAP test of the self-test), how many runs met it. A check is
# deterministic when a reference passes N/N and its broken server is caught N/N.
#   harness/tests/repeat.sh 10 --only broken 03-no-mutex 03-leak
#   harness/tests/repeat.sh 10 --only reference
set -uo pipefail
n=${1:?usage: repeat.sh N [selftest arguments...]}
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log=$(mktemp)
details=${REPEAT_DETAILS:-/tmp/repeat-details.$$}
trap 'rm -f "$log" "$log.run"' EXIT
trap 'exit 2' INT TERM # so that the EXIT trap runs
for ((i = 1; i <= n; i++)); do
    "$here/../selftest" "$@" >"$log.run" 2>&1
    # Each test as "ok|not ok<TAB>what", its number and the status the harness gave dropped.
    sed -nE 's/^(ok|not ok) [0-9]+ (.*)$/\1\t\2/p' "$log.run" | sed -E 's/ \((pass|fail|skip)\)$//' >>"$log"
    # Keep what every unmet expectation said (the "# " lines after it), for the post-mortem.
    awk -v run="$i" '/^not ok / { keep = 1; print "run " run ": " $0; next } /^(ok|not ok) / { keep = 0 } keep && /^# /' \
        "$log.run" >>"$details"
    rm -f "$log.run"
    printf 'run %d/%d: %d unmet expectations so far\n' "$i" "$n" "$(grep -c '^not ok' "$log")" >&2
done
[[ -s $details ]] && echo "details of the unmet expectations: $details" >&2
# Each expectation, with how many runs met it.
cut -f2 "$log" | sort | uniq -c | while read -r total what; do
    good=$(grep -cxF "ok	$what" "$log")
    printf '%2d/%d  %s\n' "$good" "$total" "$what"
done | sort -t/ -k1,1n
