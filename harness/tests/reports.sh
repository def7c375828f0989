#!/usr/bin/env bash
# --json and --junit write well-formed reports that agree with the run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s -C "$root" 01-iterative >/dev/null
"$root/harness/run" 01 --only build,echo --json "$tmp/r.json" --junit "$tmp/r.xml" >"$tmp/out"
python3 - "$tmp/r.json" "$tmp/r.xml" <<'PY'
import json, sys, xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
c = r["chapters"]["01-iterative"]
assert r["passed"] == 2 and r["failed"] == 0, r
assert [x["check"] for x in c["checks"]] == ["build", "echo"], c
assert c["score"] == c["max"] == 20, c
suite = ET.parse(sys.argv[2]).getroot().find("testsuite")
assert suite.get("name") == "01-iterative" and suite.get("tests") == "2" and suite.get("failures") == "0"
PY
tail -n 1 "$tmp/out" | grep -qx '2 passed, 0 failed'
