#!/usr/bin/env bash
# harness/tests/plain-bats.sh CHAPTER — every check run with plain bats, as a teaching assistant
# would (LAB_SERVER=01-iterative/server bats harness/checks/), the slow ones skipped
# (LAB_QUICK=1): it passes, the checks that do not apply skip with their reason, and nothing is
# written outside bats' temporary directories or left running.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ch=$(cd "$root" && compgen -G "${1:?usage: plain-bats.sh CHAPTER}*" | head -n 1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/cwd" "$tmp/tmp" "$tmp/bin"
make -s -C "$root" "$ch" loadgen >/dev/null || exit 1
# Its own copy of the server (other gradings may run the chapter meanwhile), so the chapter and the
# source are given as a copy's would be.
cp "$root/$ch/server" "$tmp/bin/server"
touch "$tmp/before"
out=$(cd "$tmp/cwd" && LAB_SERVER="$tmp/bin/server" LAB_CHAPTER=$ch LAB_SRC="$root/$ch/server.c" LAB_QUICK=1 \
    TMPDIR="$tmp/tmp" bats --tap "$root/harness/checks" 2>&1)
rc=$?
((rc == 0)) || { printf 'bats exited %d:\n%s\n' "$rc" "$(grep -A4 '^not ok' <<<"$out" | head -n 20)"; exit 1; }
grep -q "# skip pool applies to chapters 04, not to $ch" <<<"$out" ||
    { echo "a check that does not apply did not skip with its reason"; exit 1; }
# Where a check could write by mistake: the working directory, TMPDIR outside the directories
# bats makes (and removes) there, and files in / or the lab's tree (an empty LAB_LOG once put
# /pgids and /server1-1.out there). Directories whose times change (/tmp) are not counted.
left=$({
    find "$tmp/cwd" "$tmp/tmp" -mindepth 1
    find / -maxdepth 1 -type f -newer "$tmp/before"
    find "$root" -type f -newer "$tmp/before" -not -path "$root/.git/*" -not -path "$root/0*/server*"
} 2>/dev/null | head -n 5)
[[ -z $left ]] || { printf 'files written outside the temporary directories:\n%s\n' "$left"; exit 1; }
running=$(pgrep -f "$tmp/bin/server" || true)
[[ -z $running ]] || { echo "server processes left running: $running"; exit 1; }
