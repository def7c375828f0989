"""mdlinks.py — the relative links of Markdown pages, followed (handout.py, french.py).

    for page, target, dest, problem in links(pages, inside=ROOT):
        ...   # problem is "", "no such file" or "no such heading"

A link's target is a file relative to its page, maybe with "#anchor": the anchor must be a heading
of that file as GitHub names it (lower case, punctuation out, accents kept, spaces to hyphens).
Links in code blocks and to URLs ("https:", "mailto:") are not links here. With inside, a target
outside that folder counts as no such file (a handout's link must stay in the handout)."""

import pathlib
import re

FENCE = re.compile(r"^ {0,3}(```|~~~)")


def prose(text):
    """The lines of a page outside its code blocks."""
    out, fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fence = not fence
        elif not fence:
            out.append(line)
    return out


def slug(heading):
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    return {slug(m.group(1)) for line in prose(path.read_text(encoding="utf-8")) if (m := re.match(r"^#{1,6} (.*)$", line))}


def links(pages, inside=None):
    """(page, target, dest, problem) for each relative link of each page."""
    for page in pages:
        page = pathlib.Path(page)
        for target in re.findall(r"\]\(([^)\s]+)\)", "\n".join(prose(page.read_text(encoding="utf-8")))):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page.resolve()
            if not dest.exists() or (inside is not None and inside not in (dest, *dest.parents)):
                problem = "no such file"
            elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
                problem = "no such heading"
            else:
                problem = ""
            yield page, target, dest, problem
