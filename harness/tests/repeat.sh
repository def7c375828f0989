#!/usr/bin/env bash
# harness/tests/repeat.sh N [selftest arguments...] — run the self-test N times in a row and count,
# for every expectation, how many runs met it. A check is deterministic when a reference passes
# N/N and its broken server is caught N/N.
#   harness/tests/repeat.sh 10 --only broken 03-no-mutex 03-leak
#   harness/tests/repeat.sh 10 --only reference
set -uo pipefail
n=${1:?usage: repeat.sh N [selftest arguments...]}
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log=$(mktemp)
details=${REPEAT_DETAILS:-/tmp/repeat-details.$$}
trap 'rm -f "$log" "$log.run"' EXIT
trap 'exit 2' INT TERM  # so that the EXIT trap runs
for ((i = 1; i <= n; i++)); do
    "$here/../selftest" "$@" >"$log.run" 2>&1
    grep -E '^(ok|FAIL) ' "$log.run" >>"$log"
    # Keep what every unmet expectation said (the indented lines after it), for the post-mortem.
    awk -v run="$i" '/^FAIL / { keep = 1; print "run " run ": " $0; next } /^[a-z=]/ { keep = 0 } keep' \
        "$log.run" >>"$details"
    rm -f "$log.run"
    printf 'run %d/%d: %d unmet expectations so far\n' "$i" "$n" "$(grep -c '^FAIL' "$log")" >&2
done
[[ -s $details ]] && echo "details of the unmet expectations: $details" >&2
# Each expectation, with how many runs met it.
sed -E 's/^(ok|FAIL) +//; s/ \((pass|fail|skip)\)$//' "$log" | sort | uniq -c | while read -r total what; do
    good=$(grep -cF "ok     $what" "$log")
    printf '%2d/%d  %s\n' "$good" "$total" "$what"
done | sort -t/ -k1,1n
