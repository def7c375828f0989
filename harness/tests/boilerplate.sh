#!/usr/bin/env bash
# The blocks marked "==== common: NAME ... ====" ... "==== end common ====" must be byte-identical
# in every chapter that has them, so that a diff between two chapters shows only what the second
# one teaches. Prints the first difference and exits 1 if they are not.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Every block name used anywhere.
mapfile -t blocks < <(sed -n 's|.*/\* ==== common: \([^—]*[^ —]\) *—.*|\1|p' 0*/server.c | sort -u)
for b in "${blocks[@]}"; do
    ref=""
    for f in 0*/server.c; do
        grep -q "==== common: $b " "$f" || continue
        awk -v b="==== common: $b " 'index($0, b) { on = 1 } on { print } on && /==== end common ====/ { exit }' \
            "$f" >"$tmp/${f%%/*}"
        if [[ -z $ref ]]; then
            ref=$f
        elif ! d=$(diff -u "$tmp/${ref%%/*}" "$tmp/${f%%/*}"); then
            echo "block '$b' differs between $ref and $f:"
            printf '%s\n' "$d" | sed -n '3,20p'
            status=1
        fi
    done
    [[ -n $ref ]] && echo "block '$b': identical in $(grep -l "==== common: $b " 0*/server.c | cut -d/ -f1 | tr '\n' ' ')"
done
exit $status
