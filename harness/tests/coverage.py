#!/usr/bin/env python3
"""Does COURSE.md follow the whole text? One tally line per heading of the text (the list
harness/tests/text-headings.txt, in the text's order):

    ok|text: HEADING (under PARENT)|
    not ok|text: HEADING (under PARENT)|why

COURSE.md names a heading when one of its "In the text:" references quotes it:

- A reference is a paragraph of COURSE.md (outside code blocks) whose first line starts with
  "**In the text:**"; it may wrap over several lines, which are joined with a space.
- It counts only if its section (up to COURSE.md's next heading) has, after it, at least one more
  paragraph that is not itself a reference: a reference with nothing after it follows nothing.
- It names the headings it quotes in double quotes, "...", exactly, with two exceptions: backticks
  are ignored, and so is the kind of quote mark or apostrophe (“ ” « » are ", ’ ‘ are ') and of
  white space (line breaks, runs of spaces). Words, case and punctuation must be the text's.
- A heading whose text recurs in the list (e.g. "Concept", under each approach) is named only as
  "PARENT › HEADING", its parent's text, " › " (U+203A) and its own, e.g.
  "Approche 1 : Multi-Processus avec fork() › Concept". A bare "Concept" names none of them, and
  the tally says so. Any heading may be named that way; a heading that does not recur may also be
  named alone.

Usage: coverage.py [COURSE.md]. Exits 0: the tally decides."""

import collections
import pathlib
import re
import sys
import unicodedata

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
REF = ("**In the text:**", "**Dans le texte :**")  # COURSE.md's, COURSE.fr.md's
SEP = " › "
HEADING = re.compile(r"#{1,6}(\s|$)")
FENCE = re.compile(r" {0,3}(```|~~~)")
MARKS = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "’": "'", "‘": "'", "`": None})


def norm(s):
    """The text as matching sees it: no backticks, one kind of quote mark, single spaces."""
    s = unicodedata.normalize("NFC", s).translate(MARKS)
    return re.sub(r"\s*›\s*", SEP, re.sub(r"\s+", " ", s)).strip()


def sections(course):
    """COURSE.md split at its headings, each section a list of paragraphs (runs of non-blank
    lines; a code block is part of one paragraph, whatever blank or "#" lines it holds)."""
    out, para, fence = [[]], None, False
    for line in course.splitlines():
        if not fence and HEADING.match(line):
            out.append([])
            para = None
        elif not fence and not line.strip():
            para = None
        else:
            if para is None:
                para = []
                out[-1].append(para)
            para.append(line)
            fence ^= bool(FENCE.match(line))
    return out


def quoted(course):
    """The names quoted by references with content after them, and by those without."""
    named, empty = set(), set()
    for section in sections(course):
        for i, para in enumerate(section):
            if para[0].startswith(REF):
                names = {n.strip() for n in re.findall(r'"([^"]*)"', norm(" ".join(para)))}
                followed = any(not p[0].startswith(REF) for p in section[i + 1:])
                (named if followed else empty).update(names)
    return named, empty


headings = [line.split("\t") for line in (ROOT / "harness/tests/text-headings.txt").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("//")]
course = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "COURSE.md").read_text(encoding="utf-8")
named, empty = quoted(course)
count = collections.Counter(norm(h) for _, _, h in headings)

for _, parent, heading in headings:
    what = f"text: {heading}" + (f" (under {parent})" if parent else "")
    h = norm(heading)
    forms = {norm(parent) + SEP + h} | ({h} if count[h] == 1 else set())
    if forms & named:
        print(f"ok|{what}|")
    elif forms & empty:
        print(f'not ok|{what}|the "In the text:" line of COURSE.md that names it has no paragraph after it in its section')
    elif h in named | empty:
        print(f'not ok|{what}|COURSE.md quotes "{h}" alone, but {count[h]} headings of the text say that: write "{norm(parent)}{SEP}{h}"')
    else:
        print(f'not ok|{what}|no "In the text:" line of COURSE.md names it')
