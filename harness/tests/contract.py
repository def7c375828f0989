#!/usr/bin/env python3
"""Is CONTRACT.md the whole law? Every rule a check enforces must be stated there.

A check (harness/checks/*.bats, an instructor's extra check too) names in its header, one
"# rule: TAG" line each, the rules of CONTRACT.md it enforces; CONTRACT.md states each rule with
its tag in brackets, "[TAG]". One tally line per check and one per tag of CONTRACT.md:

    ok|contract: CHECK enforces only rules CONTRACT.md states (TAG, ...)|
    not ok|contract: CHECK ...|why (no rule named, or a tag CONTRACT.md does not state)
    ok|contract: [TAG] is enforced by a check (CHECK, ...)|

A check that names no rule fails: what it takes points for must be written down somewhere a
student reads. A tag of CONTRACT.md that no check names fails too: a rule nobody checks is either
gone or untested.

Usage: contract.py [CHECKS_DIR] [CONTRACT.md]. Exits 0: the tally decides."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
TAG = re.compile(r"\[([a-z0-9]+(?:-[a-z0-9]+)*)\]")
RULE = re.compile(r"^# rule: *([^ ]+) *$")


def main():
    checks_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "harness" / "checks"
    contract = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "CONTRACT.md"
    stated = set()
    for line in contract.read_text().splitlines():
        if line.lstrip().startswith("|"):  # tables: options, not rules
            continue
        line = re.sub(r"`[^`]*`", "", line)  # code (`[w1] + ...`) is no tag, nor a Markdown link
        stated.update(TAG.findall(line.replace("](", "] (")))
    enforced = {}
    for path in sorted(checks_dir.glob("*.bats")):
        head = []
        for line in path.read_text().splitlines():  # the header: the comment lines at the top
            if line and not line.startswith("#"):
                break
            head.append(line)
        rules = [m.group(1) for m in map(RULE.match, head) if m]
        name = path.stem
        unknown = [r for r in rules if r not in stated]
        if not rules:
            print(f"not ok|contract: {name} names the rules it enforces|its header has no '# rule: TAG' line")
        elif unknown:
            print(f"not ok|contract: {name} enforces only rules CONTRACT.md states|"
                  f"no [{'], ['.join(unknown)}] in CONTRACT.md")
        else:
            print(f"ok|contract: {name} enforces only rules CONTRACT.md states ({', '.join(rules)})|")
        for r in rules:
            enforced.setdefault(r, []).append(name)
    for tag in sorted(stated):
        if tag in enforced:
            print(f"ok|contract: [{tag}] is enforced by a check ({', '.join(enforced[tag])})|")
        else:
            print(f"not ok|contract: [{tag}] is enforced by a check|no check's header names it")


if __name__ == "__main__":
    main()
