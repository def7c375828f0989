#!/usr/bin/env python3
"""Each chapter's starter.c is its server.c with the lesson's function bodies replaced by TODOs:
filling every gap (a function whose body holds "TODO(") with the reference's body of the same
function must give back server.c byte for byte, so the two never drift apart. One line per
starter: "ok|..." or "not ok|...|what differs"."""

import difflib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
# A function: its signature line at the start of a line, "{" alone on the next, "}" alone to end it.
FUNCTION = re.compile(r"^(?P<sig>[a-z][^\n;]*\))\n\{\n(?P<body>.*?)^\}$", re.M | re.S)


def bodies(text):
    return {m.group("sig"): m.group("body") for m in FUNCTION.finditer(text)}


for starter in sorted(ROOT.glob("0[1-9]-*/starter.c")):
    chapter = starter.parent.name
    reference = (starter.parent / "server.c").read_text()
    ref_bodies = bodies(reference)
    gaps, missing = [], []

    def fill(m):
        if "TODO(" not in m.group("body"):
            return m.group(0)
        gaps.append(m.group("sig"))
        if m.group("sig") not in ref_bodies:
            missing.append(m.group("sig"))
            return m.group(0)
        return f"{m.group('sig')}\n{{\n{ref_bodies[m.group('sig')]}}}"

    filled = FUNCTION.sub(fill, starter.read_text())
    # The starter's header says it is one: that paragraph is not the reference's.
    filled = re.sub(r" \*\n \* STARTER:.*?(?= \*/\n)", "", filled, count=1, flags=re.S)
    what = f"{chapter}/starter.c: its {len(gaps)} gaps filled with server.c's code give back server.c"
    if missing:
        print(f"not ok|{what}|no function in server.c for: {'; '.join(missing)}")
    elif filled != reference:
        diff = difflib.unified_diff(reference.splitlines(), filled.splitlines(), "server.c", "filled starter.c", lineterm="", n=1)
        print(f"not ok|{what}|{' / '.join(list(diff)[2:8])}")
    elif not gaps:
        print(f"not ok|{what}|it has no TODO( gap")
    else:
        print(f"ok|{what}|")
