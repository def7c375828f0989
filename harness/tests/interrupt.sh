#!/usr/bin/env bash
# Ctrl-C (SIGINT) in the middle of a check: harness/run exits 2 and leaves no server process and no
# temporary directory behind.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A background job of a script starts with SIGINT ignored, and bash cannot trap a signal ignored
# at entry: restore the default first, as a terminal's foreground job would have it.
TMPDIR=$tmp setsid python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
    "$root/harness/run" 01 --only idle-cpu >"$tmp/out" 2>&1 &
pid=$!
sleep 2.5  # inside the check: 100 connections held, CPU being measured
kill -INT "$pid"
wait "$pid"
rc=$?
[[ $rc -eq 2 ]] || { echo "exit status $rc after SIGINT, expected 2"; cat "$tmp/out"; exit 1; }
sleep 0.5
left=$(pgrep -f "$root/01-iterative/server" || true)
[[ -z $left ]] || { echo "server processes left running: $left"; exit 1; }
dirs=$(find "$tmp" -mindepth 1 -maxdepth 1 -name 'lab-run.*')
[[ -z $dirs ]] || { echo "temporary directory left behind: $dirs"; exit 1; }
