# shellcheck shell=bash
# harness/lib/i18n.bash — the grader speaks the student's language (GNU gettext), sourced by
# harness/run and harness/lib/check.bash.
#
# English is the source: a message's msgid is its English text, so an English run prints what it
# always did. harness/po/fr.po holds the French, compiled into harness/locale (harness/po/update).
# In the code:  gettext 'text'   and   eval_gettext 'text with $var'  (single quotes: the variables
# are substituted after translation, and only plain $name or ${name} may appear).
#
# lab_language [CODE]: the language to speak, "en" or "fr", from CODE (harness/run --lang), else
# LAB_LANG, else the first of LANGUAGE, LC_ALL, LC_MESSAGES and LANG that is set, as any program of
# the user's system reads them; then exported as LAB_LANG and LANGUAGE. For French, LC_ALL becomes
# C.UTF-8: GNU gettext translates only under a locale that is installed and not "C", and C.UTF-8 is
# always there, while fr_FR.UTF-8 often is not (a fresh Debian, a container).

TEXTDOMAIN=concurrent-servers-lab
TEXTDOMAINDIR=${LAB_ROOT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/harness/locale
export TEXTDOMAIN TEXTDOMAINDIR

# lab_lang_of VALUE: "fr" for a French language or locale name (fr, fr_FR.UTF-8, fr_CA...), "en"
# for any other (en_US.UTF-8, C, de_DE.UTF-8, nothing): the lab speaks those two. make handout and
# make gradescope map the instructor's LANG with it too.
lab_lang_of() {
    case ${1,,} in
    fr | fr[_.@-]* | french | français) echo fr ;;
    *) echo en ;;
    esac
}

lab_language() {
    local want=${1:-${LAB_LANG:-}} v
    if [[ -z $want ]]; then
        for v in "${LANGUAGE:-}" "${LC_ALL:-}" "${LC_MESSAGES:-}" "${LANG:-}"; do
            [[ -n $v ]] && { want=${v%%:*}; break; }
        done
    fi
    LAB_LANG=$(lab_lang_of "$want")
    LANGUAGE=$LAB_LANG
    export LAB_LANG LANGUAGE
    if [[ $LAB_LANG != en ]]; then
        LC_ALL=C.UTF-8
        export LC_ALL
    fi
}

if command -v gettext.sh >/dev/null 2>&1 && command -v envsubst >/dev/null 2>&1; then
    # shellcheck source=/dev/null
    . gettext.sh
else
    # Without GNU gettext (package gettext-base), English: the msgid, its variables substituted.
    gettext() { printf '%s' "$1"; }
    eval_gettext() {
        local s=$1 out="" name
        while [[ $s =~ ^([^\$]*)\$(\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))(.*)$ ]]; do
            name=${BASH_REMATCH[3]:-${BASH_REMATCH[4]}}
            out+=${BASH_REMATCH[1]}${!name-}
            s=${BASH_REMATCH[5]}
        done
        printf '%s' "$out$s"
    }
fi
