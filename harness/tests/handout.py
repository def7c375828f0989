#!/usr/bin/env python3
"""handout.py DIR [--documents] — a student handout (make handout) holds no reference code.

Reference code is a line of 20 characters or more (leading and trailing blanks aside) that is in a
chapter's server.c and in no starter.c: what the student has to write. No file of the handout may
hold one. Nor may it hold the lab's own tests, a broken server's explanation ("why:" lines), or a
server.c that is not its chapter's starter, nor any line of the instructors' answer key
(instructor/answer-key.md: its lines of 30 characters or more that the documents a student gets
do not also hold). With --documents (a handout, not a grader's zip), its documents are a student's: every relative link of every .md file resolves,
to a file of the handout and, after a "#", to a heading of that file; its COURSE.md walks through
no reference code, and each chapter opens with what the student will learn and their task. A
French handout (make handout LANG=fr: COURSE.fr.md and no COURSE.md) is held to the same, in
French: its server.c files are the French starters, its COURSE.fr.md opens each chapter with the
French leads. One tally line per finding kind: "ok|..." or "not ok|...|where"."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
HANDOUT = pathlib.Path(sys.argv[1]).resolve()
DOCUMENTS = sys.argv[2:] == ["--documents"]
FRENCH = (HANDOUT / "COURSE.fr.md").is_file() and not (HANDOUT / "COURSE.md").is_file()
STARTER, COURSE = ("starter.fr.c", "COURSE.fr.md") if FRENCH else ("starter.c", "COURSE.md")
LEADS = (["Dans le texte :", "Vous apprendrez.", "Votre tâche.", "L'idée."] if FRENCH
         else ["In the text:", "You will learn.", "Your task.", "The idea."])


def lines(path):
    return {line.strip() for line in path.read_text().splitlines()}


given = set().union(*(lines(p) for p in ROOT.glob("0[1-9]-*/starter.c")))
secret = {line for p in ROOT.glob("0[1-9]-*/server.c") for line in lines(p) if len(line) >= 20} - given

KEY = ROOT / "instructor" / "answer-key.md"
answers = {line for line in lines(KEY) if len(line) >= 30} if KEY.is_file() else set()
answers -= set().union(*(lines(ROOT / doc) for doc in ("COURSE.md", "README.md", "CONTRACT.md", "GLOSSARY.md")))

leaks, why, tests, servers, keyed, files = [], [], [], [], [], 0
for path in sorted(HANDOUT.rglob("*")):
    if not path.is_file():
        continue
    rel = path.relative_to(HANDOUT)
    data = path.read_bytes()
    if rel.parts[:2] == ("harness", "tests") or rel.suffix == ".patch":
        tests.append(str(rel))
    if b"\0" in data:
        continue  # a built binary (make handout BUGHUNT=1): built from no reference line it could show
    files += 1
    for n, line in enumerate(data.decode(errors="replace").splitlines(), 1):
        if line.strip() in secret:
            leaks.append(f"{rel}:{n}: {line.strip()[:60]}")
        if line.startswith("why: "):
            why.append(f"{rel}:{n}")
        if line.strip() in answers:
            keyed.append(f"{rel}:{n}: {line.strip()[:60]}")
    if rel.name == "server.c" and len(rel.parts) == 2:
        starter = ROOT / rel.parts[0] / STARTER
        if not starter.is_file() or data != starter.read_bytes():
            servers.append(str(rel))


def tally(ok, what, where):
    print(f"ok|{what}|" if ok else f"not ok|{what}|{'; '.join(where[:5])}{' ...' if len(where) > 5 else ''}")


tally(files > 0, "handout: it has files", ["the handout is empty"])
tally(not leaks, f"handout: none of its {files} files holds one of the {len(secret)} reference lines no starter has", leaks)
tally(not servers, f"handout: each chapter's server.c is its starter{' (French)' if FRENCH else ''}", servers)
tally(not tests and not why, "handout: no lab test, no broken server, no 'why:' line", tests + why)
tally(bool(answers) and not keyed, f"handout: none of the answer key's {len(answers)} lines is in it",
      keyed or ["instructor/answer-key.md is missing or empty"])

if not DOCUMENTS:
    sys.exit(0)


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from mdlinks import links  # noqa: E402

found = list(links(sorted(HANDOUT.rglob("*.md")), inside=HANDOUT))
nlinks = len(found)
broken = [f"{page.relative_to(HANDOUT)}: ({target}) {problem}" for page, target, _, problem in found if problem]
tally(nlinks > 0 and not broken, f"handout: its {nlinks} relative links resolve, headings included", broken or ["no link"])

course = (HANDOUT / COURSE).read_text() if (HANDOUT / COURSE).is_file() else ""
reference = [f"{COURSE}: {phrase}" for phrase in ("Walk through `server.c`", "the reference, and compare",
                                                  "Visite de `server.c`", "référence, et comparez", "reader-only",
                                                  "handout-only", "diff 02-fork/server.c")
             if phrase in course]
tally(course and not reference, f"handout: its {COURSE} walks through no reference code", reference or [f"no {COURSE}"])
order = []
for section in re.findall(r"^## 0[1-9]-.*?(?=^## |\Z)", course, re.M | re.S):
    leads = re.findall(r"^\*\*(" + "|".join(re.escape(lead) for lead in LEADS) + r")\*\*", section, re.M)
    if leads != LEADS:
        order.append(f"{section.splitlines()[0][3:30]}: {', '.join(leads)}")
tally(course and not order, f"handout: each chapter of its {COURSE} opens with what you will learn, then your task",
      order or ["no chapter"])
lines = course.split("\n")
joined = [f"{COURSE}:{i + 1}: {lines[i][:40]}" for i in range(1, len(lines))
          if re.match(r"\*\*[A-ZÀ-Ý][^*]*[.:]\*\*", lines[i]) and lines[i - 1].strip()]
tally(course and not joined, f"handout: each paragraph of its {COURSE} stands apart (a blank line before each bold lead)",
      joined or [f"no {COURSE}"])
