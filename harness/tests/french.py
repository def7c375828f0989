#!/usr/bin/env python3
"""The lab in French, kept in step with the English (run by harness/selftest).

Each English page a student or a reader of the text reads has its French twin: COURSE.fr.md,
README.fr.md, CONTRACT.fr.md, each chapter's hints.fr.md and starter.fr.c. One tally line per
finding kind ("ok|..." or "not ok|...|where"):

- twins: the same headings at the same levels, in the same order (COURSE's chapters with their
  fixed French titles), the same marker comments (reader-only, handout-only, bench regions) in the
  same order, the same contract tags; the same hints, each for the same TODO and of the same kind;
- starters: a French starter is its English one with French comments: the same code byte for byte
  (comments aside), the same TODOs, each pointing to the same hints;
- links: every relative link of a French page resolves, headings included, and none leads to an
  English page that has a French twin (the French reader would fall into English);
- vocabulary: no French page renders a glossary term otherwise than GLOSSARY.md's French column
  (harness/tests/glossary-fr.txt lists the renderings to avoid, each with the glossary's word).

    french.py --reports EN FR   the same server graded twice, in English then under a French LANG,
                                each folder holding report.json, report.xml (JUnit), gradescope.json
                                and terminal.log: every failed test's name and message is French in
                                the terminal and in every report (it differs from the English, and
                                the JSON says "lang": "fr"), the hint line names COURSE.fr.md"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "harness/tests"))
from mdlinks import links, prose  # noqa: E402
KINDS = {"a nudge": "une piste", "a pitfall": "un piège", "a second pitfall": "un second piège",
         "the near-answer": "la quasi-réponse"}
MARKER = re.compile(r"<!-- (?:end )?(?:reader-only|bench: [\w-]+)|<!-- handout-only|end handout-only -->")


def tally(ok, what, where):
    print(f"ok|{what}|" if ok else f"not ok|{what}|{'; '.join(where[:5])}{' ...' if len(where) > 5 else ''}")


def headings(text):
    return [(len(m.group(1)), m.group(2)) for line in prose(text) if (m := re.match(r"^(#{1,6}) (.*)$", line))]


PAGES = [("COURSE.md", "COURSE.fr.md"), ("README.md", "README.fr.md"), ("CONTRACT.md", "CONTRACT.fr.md")]
CHAPTERS = sorted(p.parent for p in ROOT.glob("0[1-9]-*/starter.c"))
PAGES += [(f"{c.name}/hints.md", f"{c.name}/hints.fr.md") for c in CHAPTERS]

# ---- twins ----------------------------------------------------------------------------------
for en_name, fr_name in PAGES:
    en_path, fr_path = ROOT / en_name, ROOT / fr_name
    if not fr_path.is_file():
        tally(False, f"french: {fr_name} is the twin of {en_name}", [f"{fr_name} is missing"])
        continue
    en, fr = en_path.read_text(encoding="utf-8"), fr_path.read_text(encoding="utf-8")
    problems = []
    he, hf = headings(en), headings(fr)
    if [lvl for lvl, _ in he] != [lvl for lvl, _ in hf]:
        k = next((i for i, (a, b) in enumerate(zip(he, hf)) if a[0] != b[0]), min(len(he), len(hf)))
        problems.append(f"{len(he)} headings against {len(hf)}; first different at '{(he[k:k + 1] or [('', '-')])[0][1]}'")
    if en_name == "COURSE.md":
        ce = [t[3:t.index(" ")] for lvl, t in he if lvl == 2 and re.match(r"0[1-9]-", t)]
        cf = [t[3:t.index(" ")] for lvl, t in hf if lvl == 2 and re.match(r"0[1-9]-", t)]
        if ce != cf:
            problems.append(f"chapters {ce} against {cf}")
    me, mf = MARKER.findall(en), MARKER.findall(fr)
    if me != mf:
        problems.append(f"marker comments differ: {len(me)} against {len(mf)}, first "
                        + next((f"{a} / {b}" for a, b in zip(me, mf) if a != b), "at the end"))
    if en_name == "CONTRACT.md":
        te, tf = sorted(set(re.findall(r"\[([a-z0-9-]+)\]", en))), sorted(set(re.findall(r"\[([a-z0-9-]+)\]", fr)))
        if te != tf:
            problems.append(f"contract tags differ: {sorted(set(te) ^ set(tf))}")
    if en_name.endswith("hints.md"):
        ke = re.findall(r"^## Hint (\d+) — TODO\(([\d.]+)\), (.+)$", en, re.M)
        kf = re.findall(r"^## Indice (\d+) — TODO\(([\d.]+)\), (.+)$", fr, re.M)
        want = [(n, t, KINDS.get(k, k)) for n, t, k in ke]
        if want != kf:
            problems.append(f"{len(ke)} hints against {len(kf)}, or not the same TODOs and kinds: first "
                            + next((f"{a} / {b}" for a, b in zip(want, kf) if a != b), "at the end"))
    tally(not problems, f"french: {fr_name} is the twin of {en_name} (headings, markers{', tags' if 'CONTRACT' in en_name else ''})",
          problems)

# ---- starters -------------------------------------------------------------------------------


def code(text):
    """C code with each comment a space, blank lines and trailing spaces out, strings kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif text[i] in "\"'":
            q, j = text[i], i + 1
            while j < n and text[j] != q:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return [line.rstrip() for line in "".join(out).split("\n") if line.strip()]


for c in CHAPTERS:
    en_path, fr_path = c / "starter.c", c / "starter.fr.c"
    what = f"french: {c.name}/starter.fr.c is starter.c with French comments: the same code, the same TODOs and hints"
    if not fr_path.is_file():
        tally(False, what, [f"{c.name}/starter.fr.c is missing"])
        continue
    en, fr = en_path.read_text(encoding="utf-8"), fr_path.read_text(encoding="utf-8")
    problems = []
    ce, cf = code(en), code(fr)
    k = next((i for i, (a, b) in enumerate(zip(ce, cf)) if a != b), None)
    if k is not None:
        problems.append(f"code line {k + 1} differs: '{cf[k].strip()[:60]}'")
    elif len(ce) != len(cf):
        problems.append(f"{len(ce)} code lines against {len(cf)}")
    if re.findall(r"TODO\(([\d.]+)\)", en) != re.findall(r"TODO\(([\d.]+)\)", fr):
        problems.append("not the same TODO labels, in the same order")
    he = re.findall(r"Hints: make hint CH=(\d\d) \(([\d-]+)\)", en)
    hf = re.findall(r"Indices : make hint CH=(\d\d) \(([\d-]+)\)", fr)
    if he != hf:
        problems.append(f"its 'Indices : make hint' lines {hf} are not the English's {he}")
    if re.search(r"\b(Checked by|Hints|Read):", fr):
        problems.append("an English 'Checked by:', 'Hints:' or 'Read:' line is left")
    tally(not problems, what, problems)

# ---- links ----------------------------------------------------------------------------------
twins = {(ROOT / e).resolve(): f for e, f in PAGES}
found = list(links([ROOT / f for _, f in PAGES if (ROOT / f).is_file()]))
nlinks = len(found)
broken = [f"{page.relative_to(ROOT)}: ({target}) {problem}" for page, target, _, problem in found if problem]
english = [f"{page.relative_to(ROOT)}: ({target}): its twin is {twins[dest]}" for page, target, dest, problem in found
           if not problem and dest in twins]
tally(nlinks > 0 and not broken, f"french: the {nlinks} relative links of the French pages resolve, headings included",
      broken or ["no link"])
tally(not english, "french: no French page links to an English page that has a French twin", english)

# ---- vocabulary -----------------------------------------------------------------------------
glossary = (ROOT / "GLOSSARY.md").read_text(encoding="utf-8")
french_column = " ".join(row.split("|")[2] for row in glossary.splitlines() if row.startswith("| ") and row.count("|") >= 4)
rules, bad_rules = [], []
for line in (ROOT / "harness/tests/glossary-fr.txt").read_text(encoding="utf-8").splitlines():
    if not line.strip() or line.startswith("//"):
        continue
    avoid, _, use = line.partition("\t")
    if not use or use.lower() not in french_column.lower():
        bad_rules.append(f"'{use}' (for '{avoid}') is not in GLOSSARY.md's French column")
    rules.append((re.compile(r"(?<!\w)" + re.escape(avoid) + r"(?!\w)", re.I), avoid, use))
tally(rules and not bad_rules, f"french: the {len(rules)} renderings to avoid each name a word of GLOSSARY.md's French column",
      bad_rules or ["harness/tests/glossary-fr.txt is empty"])
found = []
pages = [ROOT / f for _, f in PAGES] + [c / "starter.fr.c" for c in CHAPTERS]
for page in pages:
    if not page.is_file():
        continue
    for k, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        for rx, avoid, use in rules:
            if rx.search(line):
                found.append(f"{page.relative_to(ROOT)}:{k}: '{avoid}', the glossary says '{use}'")
tally(not found, f"french: the French pages use the glossary's words ({len(rules)} renderings to avoid)", found)
sys.exit(0)
