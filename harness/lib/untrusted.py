#!/usr/bin/env python3
"""Text a submission can write, made safe to show: its output, its compiler's messages, its file
and folder names. Every byte of a submission is data: nothing here interprets it.

    untrusted.py clean        stdin to stdout, each line cleaned (see clean())

Imported by harness/grade and harness/lib/report.py; harness/run pipes through `clean` whatever
of a submission it prints (a compiler message, a dead server's stderr, --verbose's logs).
"""

import hashlib
import re
import sys
import unicodedata

# C0 controls but tab and newline, DEL, C1 controls (0x80-0x9f: an 8-bit terminal reads 0x9b as
# CSI), and the invisible characters that reorder or hide what a line displays: bidirectional
# overrides and isolates (a row could be made to read "75/75 | graded"), zero-width characters.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def clean(text, newlines=True):
    """text with its control characters each replaced by '?' (a carriage return by nothing, a tab
    by a space); with newlines=False, newlines become spaces too. Bytes are decoded as UTF-8, an
    invalid byte shown as \\xNN."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    # A lone surrogate (a file name read by os.listdir that is not UTF-8) is shown as its byte.
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = text.replace("\r", "").replace("\t", " ")
    if not newlines:
        text = text.replace("\n", " ")
    return _CONTROL.sub("?", text)


def csv_cell(value):
    """A cell a spreadsheet shows as text: cleaned, on one line, and a leading =, +, -, @, tab or
    carriage return (a formula, or the start of one) behind a single quote (OWASP's advice)."""
    if isinstance(value, (int, float)):
        return value
    raw = str(value)
    text = clean(raw, newlines=False)
    if raw[:1] in ("=", "+", "-", "@", "\t", "\r") or text[:1] in ("=", "+", "-", "@"):
        text = "'" + text
    return text


def md_cell(value, limit=200):
    """A Markdown table cell that cannot break the table, run HTML or hide text: cleaned, on one
    line, | escaped, < > & as entities, at most limit characters."""
    text = clean(str(value), newlines=False)[:limit]
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def display_name(raw):
    """A student's name as it may be shown (escaped): raw is the entry's name as bytes."""
    return clean(raw.decode("utf-8", "backslashreplace"), newlines=False)


def slug(raw, length=40):
    """A file name for what is written about this entry: ASCII letters, digits, . _ -, at most
    length characters, plus a short hash of the raw name, so that no two entries share one (Zoë
    and Zoé, or two names of 300 characters that start alike)."""
    ascii_name = unicodedata.normalize("NFKD", raw.decode("utf-8", "replace"))
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name.encode("ascii", "ignore").decode())
    ascii_name = ascii_name.strip("._-")[:length] or "student"
    return f"{ascii_name}-{hashlib.sha256(raw).hexdigest()[:8]}"


def same_student_key(name):
    """Names that a person would take for the same: Unicode-normalised, case-folded."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def main():
    if sys.argv[1:] != ["clean"]:
        sys.exit(__doc__)
    data = sys.stdin.buffer.read()
    sys.stdout.write(clean(data))


if __name__ == "__main__":
    main()
