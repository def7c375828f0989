#!/usr/bin/env python3
"""Each chapter's starter.c is its server.c with the lesson's function bodies replaced by TODOs:
filling every gap (a function whose body holds "TODO(") with the reference's body of the same
function must give back server.c byte for byte, so the two never drift apart. And a TODO states a
contract, not a recipe: of the calls and constants a gap's reference body uses, its TODO names at
most half (when the body uses three or more), and all TODOs together at most a quarter (15%
measured; 78% before the TODOs were rewritten as contracts). One line per starter, then one for
the TODOs: "ok|..." or "not ok|...|what differs"."""

import difflib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
# A function: its signature line at the start of a line, "{" alone on the next, "}" alone to end it.
FUNCTION = re.compile(r"^(?P<sig>[a-z][^\n;]*\))\n\{\n(?P<body>.*?)^\}$", re.M | re.S)


KEYWORDS = {"if", "while", "for", "switch", "sizeof", "return"}


def names(code):
    """The calls and the upper-case constants of a piece of C, comments and strings aside."""
    code = re.sub(r'/\*.*?\*/|"(?:\\.|[^"\\])*"', " ", code, flags=re.S)
    calls = {m for m in re.findall(r"\b([A-Za-z_]\w*)\s*\(", code) if m not in KEYWORDS}
    return calls | set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})\b", code))


def bodies(text):
    return {m.group("sig"): m.group("body") for m in FUNCTION.finditer(text)}


named_all, used_all, recipes = 0, 0, []
for starter in sorted(ROOT.glob("0[1-9]-*/starter.c")):
    chapter = starter.parent.name
    reference = (starter.parent / "server.c").read_text()
    ref_bodies = bodies(reference)
    gaps, missing = [], []

    def fill(m):
        global named_all, used_all
        if "TODO(" not in m.group("body"):
            return m.group(0)
        gaps.append(m.group("sig"))
        todo = " ".join(re.findall(r"/\*(.*?)\*/", m.group("body"), re.S))
        used = names(ref_bodies.get(m.group("sig"), ""))
        named = {n for n in used if re.search(r"\b" + re.escape(n) + r"\b", todo)}
        named_all, used_all = named_all + len(named), used_all + len(used)
        if len(used) >= 3 and 2 * len(named) > len(used):
            tid = re.search(r"TODO\(([\d.]+)\)", todo)
            recipes.append(f"TODO({tid.group(1) if tid else '?'}) names {len(named)} of {len(used)}: {', '.join(sorted(named))}")
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

share = 100 * named_all // max(used_all, 1)
what = (f"starters: the TODOs state contracts, not recipes: they name {named_all} of the {used_all} calls and "
        f"constants the reference bodies use ({share}%; each at most half)")
if recipes or 4 * named_all > used_all:
    print(f"not ok|{what}|{'; '.join(recipes) or 'more than a quarter in all'}")
else:
    print(f"ok|{what}|")
