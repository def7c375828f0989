#!/usr/bin/env python3
"""harness/tests/bench.py DIR — what the selftest asks of a benchmark run in DIR (make bench QUICK=1)
and of the committed reference run (harness/bench/reference/). One "ok|WHAT|DETAIL" or
"not ok|WHAT|DETAIL" line per expectation, as harness/lib/report.py expect writes them.

Of the run in DIR: results.csv has, for every chapter there is, a ping-pong row with messages
flowing and no byte wrong, no connection refused (but by 02 past its 1,024 children) or timed out; every workload gave at least one
row; results.md has its tables and its targets; the plots exist when gnuplot does.
Of the reference: the same files, every workload, every chapter, and a machine described.
"""

import csv
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAPTERS = sorted(d[:2] for d in os.listdir(ROOT) if d[:2].isdigit() and os.path.isdir(os.path.join(ROOT, d)))
WORKLOADS = ["pingpong", "idlebusy", "connect", "create", "memory", "timeline", "syscalls", "instructions"]
PLOTS = ["throughput.png", "p99.png", "instructions.png", "connect.png", "timeline-01.png", "timeline-07.png"]


def say(ok, what, detail=""):
    print(f"{'ok' if ok else 'not ok'}|{what}|{detail}")


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return 0.0


def check_run(d, label, strict):
    csvp = os.path.join(d, "results.csv")
    if not os.path.exists(csvp):
        say(False, f"{label}: results.csv", "not written")
        return
    rows = rows_of(csvp)
    for ch in CHAPTERS:
        pp = [r for r in rows if r["workload"] == "pingpong" and r["chapter"] == ch]
        good = [r for r in pp if num(r["msgs_per_s"]) > 0 and num(r["bytes_wrong"]) == 0]
        # 02 keeps at most 1,024 children (its guard against a fork bomb): past that it refuses, by design.
        capped = ch == "02"
        bad = [f"{r['clients']} conns: {r['msgs_per_s']} msg/s, {r['bytes_wrong']} bytes wrong, "
               f"{r['refused']} refused, {r['timeouts']} timed out"
               for r in pp if num(r["bytes_wrong"]) or (num(r["refused"]) and not (capped and num(r["clients"]) > 1024))
               or num(r["timeouts"]) or not num(r["msgs_per_s"])]
        say(bool(good) and not bad, f"{label}: {ch} echoes under ping-pong load with no byte wrong, refused or timed out",
            "; ".join(bad) or ("no ping-pong row" if not pp else ""))
    for w in WORKLOADS:
        n = sum(r["workload"] == w for r in rows)
        say(n > 0, f"{label}: the {w} workload gave figures", "" if n else "no row")
    md = open(os.path.join(d, "results.md")).read() if os.path.exists(os.path.join(d, "results.md")) else ""
    missing = [h for h in ("## Ping-pong", "## Context switches", "## Targets", "## System calls", "## Creating a process") if h not in md]
    say(not missing, f"{label}: results.md has its tables and the targets", ", ".join(missing))
    with open(os.path.join(d, "results.json")) as f:
        doc = json.load(f)
    say(not doc.get("failed"), f"{label}: no measurement failed", "; ".join(doc.get("failed", []))[:300])
    if shutil.which("gnuplot") or strict:
        absent = [p for p in PLOTS if not os.path.exists(os.path.join(d, p))]
        say(not absent, f"{label}: the plots are drawn", ", ".join(absent))
    if strict:
        m = doc.get("machine", {})
        say(all(m.get(k) for k in ("cpu", "cores", "kernel", "cc")), f"{label}: the machine is described", str(m)[:200])


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    check_run(sys.argv[1], "bench --quick", strict=False)
    check_run(os.path.join(ROOT, "harness", "bench", "reference"), "bench reference", strict=True)


if __name__ == "__main__":
    main()
