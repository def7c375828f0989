"""harness/lib/i18n.py — the grader's messages in the student's language (GNU gettext catalogs).

    from i18n import _
    raise CheckFailed(_("{what}: expected EOF, got {n} more bytes").format(what=what, n=len(extra)))

English is the source language: a msgid is the English message, so an English run prints what it
always did. The language is LAB_LANG (harness/run sets it: --lang, or the user's LANGUAGE, LC_ALL,
LC_MESSAGES, LANG), else those variables themselves; the catalogs are harness/locale, compiled from
harness/po/fr.po (harness/po/update). Python reads the catalog without setlocale(), so French works
even where no French locale is installed."""

import gettext
import os
import pathlib

DOMAIN = "concurrent-servers-lab"
LOCALEDIR = pathlib.Path(__file__).resolve().parent.parent / "locale"


def language():
    """"en" or "fr", as harness/lib/i18n.bash's lab_language decides it."""
    want = os.environ.get("LAB_LANG", "")
    if not want:
        for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
            if os.environ.get(var):
                want = os.environ[var].split(":")[0]
                break
    want = want.lower()
    return "fr" if want in ("fr", "french", "français") or want[:3] in ("fr_", "fr.", "fr@", "fr-") else "en"


LANG = language()
_translation = gettext.translation(DOMAIN, LOCALEDIR, languages=[LANG], fallback=True)
_ = _translation.gettext
ngettext = _translation.ngettext
