#!/usr/bin/env python3
"""gradescope.py RESULTS_JSON [--expect-score N] [--expect-zero] [--expect-output TEXT] [--expect-max]

Checks a results.json against Gradescope's autograder format (its "Autograder Specifications":
a top-level "score", and "tests", each with a "name", a "score" and "max_score", an "output" and a
"visibility"), and that the tests' scores add up to the score. Prints one line, "ok" or what is
wrong, and exits 0 or 1.

    --expect-score N      the score must be N (within 0.01)
    --expect-zero         the score must be 0
    --expect-max          the score must be the full points of the checks that ran: every test
                          that ran (its output does not start with "not run:") passed
    --expect-output TEXT  the top-level output must hold TEXT (case-insensitive; may be repeated)
    --expect-leaderboard  a leaderboard with at least one entry above 0 (its format, name, value
                          and order "asc" or "desc", is checked whenever there is one)
"""

import argparse
import json
import numbers
import sys

VISIBILITY = {"visible", "hidden", "after_due_date", "after_published"}
TOLERANCE = 0.01


def number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def problems(results, args):
    """What is wrong with results (a parsed results.json), first problem first."""
    if not isinstance(results, dict):
        yield "the top level is not an object"
        return
    if "score" not in results:
        yield "no top-level score"
    elif not number(results["score"]):
        yield f"the top-level score is not a number ({results['score']!r})"
    for key in ("output",):
        if key in results and not isinstance(results[key], str):
            yield f"the top-level {key} is not a string"
    for key in ("visibility", "stdout_visibility"):
        if key in results and results[key] not in VISIBILITY:
            yield f"the top-level {key} is {results[key]!r}, not one of {', '.join(sorted(VISIBILITY))}"
    board = results.get("leaderboard")
    if board is not None:
        if not isinstance(board, list):
            yield "the leaderboard is not a list"
            board = []
        for i, e in enumerate(board, 1):
            if not (isinstance(e, dict) and isinstance(e.get("name"), str) and (number(e.get("value")) or isinstance(e.get("value"), str))
                    and e.get("order", "desc") in ("asc", "desc")):
                yield f"leaderboard entry {i} is not a name, a value and an order asc or desc: {e!r}"
    if args.expect_leaderboard and not any(isinstance(e, dict) and number(e.get("value")) and e["value"] > 0 for e in board or []):
        yield f"no leaderboard entry above 0 ({board!r})"
    tests = results.get("tests")
    if not isinstance(tests, list):
        yield "no tests list" if tests is None else "tests is not a list"
        return
    total = 0.0
    for i, t in enumerate(tests, 1):
        where = f"test {i}"
        if not isinstance(t, dict):
            yield f"{where} is not an object"
            continue
        if isinstance(t.get("name"), str):
            where += f" ({t['name']})"
        else:
            yield f"{where} has no name string"
        for key in ("score", "max_score"):
            if not number(t.get(key)):
                yield f"{where}: {key} is missing or not a number ({t.get(key)!r})"
        if not isinstance(t.get("output"), str):
            yield f"{where}: output is missing or not a string"
        if t.get("visibility") not in VISIBILITY:
            yield f"{where}: visibility is {t.get('visibility')!r}, not one of {', '.join(sorted(VISIBILITY))}"
        if "status" in t and t["status"] not in ("passed", "failed"):
            yield f"{where}: status is {t['status']!r}, not passed or failed"
        if number(t.get("score")) and number(t.get("max_score")):
            total += t["score"]
            if t["score"] < 0 or t["score"] > t["max_score"] + TOLERANCE:
                yield f"{where}: score {t['score']} is outside 0 to its max_score {t['max_score']}"
    score = results.get("score")
    if not number(score):
        return
    if abs(total - score) > TOLERANCE:
        yield f"the tests' scores add up to {total:g}, not to the score {score:g}"
    if args.expect_zero and abs(score) > TOLERANCE:
        yield f"the score is {score:g}, expected 0"
    if args.expect_score is not None and abs(score - args.expect_score) > TOLERANCE:
        yield f"the score is {score:g}, expected {args.expect_score:g}"
    if args.expect_max:
        ran = [t for t in tests if isinstance(t, dict) and not str(t.get("output", "")).startswith("not run:")]
        full = sum(t.get("max_score", 0) for t in ran if number(t.get("max_score")))
        if not ran:
            yield "no check ran"
        elif abs(score - full) > TOLERANCE:
            lost = [t.get("name", "?") for t in ran if number(t.get("score")) and t["score"] < t.get("max_score", 0)]
            yield f"the score is {score:g}, not the {full:g} points of the {len(ran)} checks that ran (lost: {', '.join(lost)})"
    output = results.get("output")
    for text in args.expect_output:
        if not isinstance(output, str) or text.lower() not in output.lower():
            yield f"the output {output!r} does not say {text!r}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results")
    p.add_argument("--expect-score", type=float)
    p.add_argument("--expect-zero", action="store_true")
    p.add_argument("--expect-max", action="store_true")
    p.add_argument("--expect-output", action="append", default=[])
    p.add_argument("--expect-leaderboard", action="store_true")
    args = p.parse_args()
    try:
        with open(args.results) as f:
            results = json.load(f)
    except OSError as e:
        print(f"{args.results}: cannot be read ({e.strerror})")
        return 1
    except ValueError as e:
        print(f"{args.results}: not valid JSON ({e})")
        return 1
    found = list(problems(results, args))
    print(f"{args.results}: {found[0]}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
          if found else "ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
