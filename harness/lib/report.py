#!/usr/bin/env python3
"""harness/run's report writer: reads what bats said of each check (TAP), and merges the
per-check results into JSON and JUnit XML.

    report.py check TAP
        what one check's bats TAP stream says, one line each: "status pass|fail|skip|none",
        "failed TEST: SENTENCE" per failed test (the last line it printed: bats-support's fail),
        "skipped REASON" and "measured FIGURE" (a check's "# measured: ..." lines, on fd 3)
    report.py merge RESULTS [--json FILE] [--junit FILE] [--gradescope FILE] [--error SENTENCE]
        RESULTS: one line per graded check, tab-separated: chapter, check, status (pass, fail or
        skip), points won, points at stake, seconds, what it failed with or why it skipped, its
        log directory (holding bats.tap, whose tests become the JUnit test cases), "hidden" for
        an instructor's extra check (--extra-checks) or nothing. --error: the
        set-up error that stopped the run (a submission that does not compile, a server that
        never starts); the reports say it, with whatever was graded before it. --gradescope:
        Gradescope's autograder results.json (score, and one test per check: score, max_score,
        output, visibility), where a check that did not run counts 0 of its points and says why.
    report.py expect JSON LABEL [BREAKS KEEPS]
        for the self-test: each check of a --json report against what was expected of it, one
        line each, "ok|WHAT|" or "not ok|WHAT|DETAIL". Without BREAKS and KEEPS (comma lists)
        every check must pass (a reference server); with them, the checks in BREAKS must fail
        and those in KEEPS pass (a broken server), and each of them must have run.
"""

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

from untrusted import clean
from i18n import LANG, _


TAP_TEST = re.compile(r"^(not ok|ok) \d+ (.*?)(?: # (skip|timeout after)\b ?(.*))?$")
BATS_NOISE = re.compile(r"^# (\((in|from) |  +from |  +`|bats warning)")


def tap_tests(path):
    """The tests of a bats TAP stream: name, status (pass, fail, skip), message, measured lines.
    A failed test's message is the last line it printed (bats' lines on where it failed left out).
    Everything is cleaned of control characters: a message may quote what the server printed."""
    tests, measured, cur = [], [], None
    try:
        lines = clean(open(path, "rb").read()).splitlines()
    except OSError:
        return [], []
    for line in lines:
        m = TAP_TEST.match(line)
        if m:
            status = "fail" if m.group(1) == "not ok" else "skip" if m.group(3) == "skip" else "pass"
            message = m.group(4) or ""
            if m.group(3) == "timeout after":
                # TRANSLATORS: {limit} is bats' own figure, "10s".
                message = _("did not finish within {limit} (the test's time limit)").format(limit=message)
            # A test's name is the check file's English, which the catalog translates.
            cur = {"name": _(m.group(2)), "status": status, "message": message}
            tests.append(cur)
        elif line.startswith("# measured: "):
            measured.append(line[len("# measured: "):])
        elif cur and cur["status"] == "fail" and line.startswith("# ") and not BATS_NOISE.match(line):
            cur["message"] = line[2:]
    return tests, measured


def check(path):
    tests, measured = tap_tests(path)
    if any(t["status"] == "fail" for t in tests):
        status = "fail"
    elif any(t["status"] == "pass" for t in tests):
        status = "pass"
    else:
        status = "skip" if tests else "none"
    print("status", status)
    # The keys (status, failed, skipped, measured) are harness/run's: they stay as they are.
    for t in tests:
        if t["status"] == "fail":
            message = t["message"] or _("failed")
            # TRANSLATORS: a failed test: its name, then what went wrong.
            print("failed", _("{name}: {message}").format(name=t["name"], message=message))
    for t in tests[:1] if status == "skip" else []:
        print("skipped", t["message"])
    for m in measured:
        print("measured", m)


def read_results(path):
    rows = []
    with open(path) as f:
        for line in f:
            ch, check, status, got, pts, secs, detail, log, hidden = line.rstrip("\n").split("\t")
            rows.append({"chapter": ch, "check": check, "status": status, "points": int(got),
                         "max_points": int(pts), "seconds": int(secs), "detail": clean(detail),
                         "hidden": hidden == "hidden",
                         **dict(zip(("tests", "measured"), tap_tests(os.path.join(log, "bats.tap")) if log else ([], [])))})
    return rows


def write_json(rows, error, path):
    chapters = {}
    for r in rows:
        c = chapters.setdefault(r["chapter"], {"score": 0, "max": 0, "checks": []})
        c["checks"].append(r)
        # Out of the chapter's full maximum: a check not run counts 0 (and is listed as not run),
        # so that --quick, --only and --bin grades have the same maximum as full ones.
        c["score"] += r["points"]
        c["max"] += r["max_points"]
        if r["status"] == "skip":
            c.setdefault("not_run", []).append(r["check"])
    out = {"lang": LANG, "chapters": chapters}
    out.update({key: sum(r["status"] == s for r in rows)
                for key, s in (("passed", "pass"), ("failed", "fail"), ("skipped", "skip"))})
    if error:
        out["error"] = error
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


def write_junit(rows, error, path):
    """A test suite per chapter, a test case per test of each check (its class CHAPTER.CHECK), or
    one for a check that ran no test (skipped by --quick, or stopped by its time limit)."""
    suites = ET.Element("testsuites")
    for ch in dict.fromkeys(r["chapter"] for r in rows):
        suite = ET.SubElement(suites, "testsuite", name=ch)
        for r in (r for r in rows if r["chapter"] == ch):
            tests = r["tests"] or [{"name": r["check"], "status": r["status"], "message": r["detail"]}]
            if r["status"] == "fail" and not any(t["status"] == "fail" for t in tests):
                tests.append({"name": r["check"], "status": "fail", "message": r["detail"]})
            for t in tests:
                case = ET.SubElement(suite, "testcase", classname=f"{ch}.{r['check']}", name=t["name"])
                if t["status"] == "fail":
                    ET.SubElement(case, "failure", message=t["message"][:500] or _("failed")).text = t["message"]
                elif t["status"] == "skip":
                    ET.SubElement(case, "skipped", message=t["message"])
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
        suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    if error:
        suite = ET.SubElement(suites, "testsuite", name="set-up", tests="1", failures="0", errors="1")
        ET.SubElement(ET.SubElement(suite, "testcase", classname="set-up", name="set-up"),
                      "error", message=error).text = error
    ET.ElementTree(suites).write(path, encoding="unicode", xml_declaration=True)


def write_gradescope(rows, error, path):
    """Gradescope's results.json: a test per check, out of its full points whether it ran or not
    (a check skipped, by --quick or a time limit, is 0 of its points and says why), so that every
    submission of a class is graded out of the same maximum."""
    tests = []
    for r in rows:
        # What the student reads (output) in their language; the status is Gradescope's word.
        if r["status"] == "pass":
            output = _("passed")
        elif r["status"] == "fail":
            failed = [_("{name}: {message}").format(name=t["name"], message=t["message"])
                      for t in r["tests"] if t["status"] == "fail"]
            output = "\n".join(failed) or r["detail"] or _("failed")
        else:
            # TRANSLATORS: {reason} says why a check did not run ("--quick", "not asked for (--only)").
            output = _("not run: {reason}").format(reason=r["detail"] or _("skipped"))
        tests.append({"name": f"{r['chapter']}: {r['check']}", "score": r["points"] if r["status"] == "pass" else 0,
                      "max_score": r["max_points"], "status": "passed" if r["status"] == "pass" else "failed",
                      "output": output,
                      # An instructor's extra check (--extra-checks) shows once the grades are published.
                      "visibility": "after_published" if r["hidden"] else "visible"})
    out = {"score": sum(t["score"] for t in tests), "tests": tests, "visibility": "visible"}
    # A "leaderboard: NAME = VALUE" figure (harness/gradescope/leaderboard.bats, make gradescope
    # LEADERBOARD=1): Gradescope's leaderboard, highest first; only from a check that passed.
    board = [{"name": m.group(1), "value": int(m.group(2)), "order": "desc"}
             for r in rows if r["status"] == "pass" for line in r.get("measured", [])
             for m in [re.fullmatch(r"leaderboard: (.+?) = (\d+)", line)] if m]
    if board:
        out["leaderboard"] = board
    if error:
        # TRANSLATORS: {error} is the set-up error that stopped the run, a sentence.
        out["output"] = _("Grading stopped: {error}").format(error=error)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


def expect(path, label, breaks=None, keeps=None, says=""):
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        print(f"not ok|{label}: the harness wrote no report|")
        return
    breaks = set(filter(None, breaks.split(","))) if breaks is not None else None
    # "start" in breaks: the pre-flight must stop it, a set-up error saying it did not start.
    if "start" in (breaks or set()):
        error = report.get("error", "")
        good = "did not start" in error and says in error
        print(("ok" if good else "not ok") + f"|{label}: the pre-flight stops it (did not start"
              + (f", \"{says}\")" if says else ")") + "|"
              + ("" if good else error or "it started: the harness graded it"))
        return
    if report.get("error"):
        print(f"not ok|{label}: the harness stopped on a set-up error|{report['error']}")
        return
    keeps = set(filter(None, keeps.split(","))) if keeps is not None else None
    seen = set()
    for ch, c in report["chapters"].items():
        for r in c["checks"]:
            name, status = r["check"], r["status"]
            # Checks left out on purpose (--quick, --only) are not graded, unless named.
            if status == "skip" and name not in (breaks or set()) | (keeps or set()) and \
                    r["detail"].startswith(("--quick", "not asked for")):
                continue
            seen.add(name)
            if breaks is None:
                good, what = status == "pass", f"{label}{ch}: {name}"
            elif name in breaks:
                good, what = status == "fail", f"{label}: {name} catches it"
            else:
                good, what = status == "pass", f"{label}: {name} still passes"
            print(("ok" if good else "not ok") + f"|{what} ({status})|" + ("" if good else r["detail"]))
    for name in sorted(((breaks or set()) | (keeps or set())) - seen):
        print(f"not ok|{label}: {name} was not run|")
    # says: the words a student must read in the failing check's message.
    if says:
        details = [r["detail"] for c in report["chapters"].values() for r in c["checks"]
                   if r["check"] in (breaks or set()) and r["status"] == "fail"]
        good = any(says in d for d in details)
        print(("ok" if good else "not ok") + f"|{label}: the message says \"{says}\"|"
              + ("" if good else " / ".join(details) or "no check failed"))


def main():
    if sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        check(sys.argv[2])
        return
    if sys.argv[1:2] == ["expect"] and len(sys.argv) in (4, 6, 7):
        expect(*sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("merge", choices=["merge"])
    p.add_argument("results")
    p.add_argument("--json")
    p.add_argument("--junit")
    p.add_argument("--gradescope")
    p.add_argument("--error")
    a = p.parse_args()
    rows = read_results(a.results)
    a.error = clean(a.error) if a.error else a.error
    if a.json:
        write_json(rows, a.error, a.json)
    if a.junit:
        write_junit(rows, a.error, a.junit)
    if a.gradescope:
        write_gradescope(rows, a.error, a.gradescope)


if __name__ == "__main__":
    main()
