#!/usr/bin/env python3
"""The lesson-first layout of each chapter's server.c (README, "Layout"), one line per chapter:

    ok|CHAPTER: the lesson starts at line N (before LIMIT); M lines of its own (under 400)

or "not ok|..." when a bound is broken. A chapter's own code is what lies outside the shared
regions that make sync writes (a lesson a later chapter reuses counts as its teacher's own); the
lesson starts at its first function body there. 08 may start later (120): its types are many."""

import pathlib
import re
import runpy

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
LESSONS = runpy.run_path(str(ROOT / "harness" / "sync"), run_name="sync")["LESSONS"]  # the one table
START = re.compile(r"^/\* ==== shared: ([\w.-]+) ")

for path in sorted(ROOT.glob("0[1-9]-*/server.c")):
    chapter = path.parent.name
    limit = 120 if chapter.startswith("08") else 100
    shared, first, own = False, None, 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = START.match(line)
        if m and LESSONS.get(m.group(1)) != chapter:
            shared = True
        elif shared and line.startswith("/* ==== end shared:"):
            shared = False
            continue
        if shared:
            continue
        own += 1
        if first is None and line == "{":
            first = n
    good = first is not None and first < limit and own < 400
    print(f"{'ok' if good else 'not ok'}|{chapter}: the lesson starts at line {first} (before {limit}); "
          f"{own} lines of its own (under 400)|")
