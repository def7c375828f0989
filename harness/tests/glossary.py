#!/usr/bin/env python3
"""GLOSSARY.md against the committed list of its terms (harness/tests/glossary-terms.txt).

For each term of the list (one a line, "#" comments and blank lines skipped), one tally line:

    ok|glossary: TERM|

when a table row of GLOSSARY.md has that term as its first cell (case-insensitive, backticks and
surrounding spaces ignored) and non-empty French and definition cells, else "not ok|glossary:
TERM|why". Then one "not ok|glossary: TERM|..." line for each row whose term the list lacks, or
that comes twice, so that the two stay in step. Always exits 0: the selftest's tally decides.

    python3 harness/tests/glossary.py [GLOSSARY.md [TERMS.txt]]
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
glossary = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "GLOSSARY.md"
listing = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "harness" / "tests" / "glossary-terms.txt"


def key(cell):
    return cell.replace("`", "").strip().lower()


# The table rows: cells split on unescaped "|"; the header (the row above a "---" line) and the
# "---" lines themselves are not entries.
rows, lines = {}, glossary.read_text(encoding="utf-8").splitlines()
for n, line in enumerate(lines):
    if not line.lstrip().startswith("|"):
        continue
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
    following = lines[n + 1] if n + 1 < len(lines) else ""
    if all(re.fullmatch(r":?-+:?", c) for c in cells) or re.fullmatch(r"\s*\|[\s:|-]+\|\s*", following):
        continue
    rows.setdefault(key(cells[0]), []).append(cells)

terms = [t.strip() for t in listing.read_text(encoding="utf-8").splitlines()]
terms = [t for t in terms if t and not t.startswith("#")]

for term in terms:
    found = rows.get(key(term))
    if not found:
        why = "no row of GLOSSARY.md has it as its first cell"
    elif len(found[0]) < 3 or not found[0][1] or not found[0][2]:
        why = "its row lacks the French or the definition"
    else:
        why = ""
    print(f"ok|glossary: {term}|" if not why else f"not ok|glossary: {term}|{why}")

listed = {key(t) for t in terms}
for k, found in rows.items():
    if k not in listed:
        print(f"not ok|glossary: {found[0][0]}|a row of GLOSSARY.md, missing from {listing.name}")
    if len(found) > 1:
        print(f"not ok|glossary: {found[0][0]}|{len(found)} rows of GLOSSARY.md have this term")
