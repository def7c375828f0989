#!/usr/bin/env bats
# The harness's own tests (run by harness/selftest): its answers to bad input, its reports, Ctrl-C,
# and the checks run under plain bats. Unlike the checks, which speak to a student in sentences,
# these speak to maintainers, and bats-assert's generic assertions say what they need to.

# shellcheck disable=SC2030,SC2031 # bats' run sets lines in each test's own shell, where it is read
setup_file() {
    ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
    FX=$BATS_FILE_TMPDIR
    mkdir -p "$FX/nocompile" "$FX/bin" "$FX/forger" "$FX/class/alice" "$FX/empty"
    printf 'int main(void) { return undeclared; }\n' >"$FX/nocompile/server.c"
    printf 'const char *__tsan_default_options(void);\nconst char *__tsan_default_options(void) { return "report_bugs=0"; }\nint main(void) { return 0; }\n' \
        >"$FX/forger/server.c"
    printf '#!/bin/sh\nexec sleep 30\n' >"$FX/bin/silent"
    printf '#!/bin/sh\nprintf "\\rLogs of the failed checks: /nowhere\\r\\n\\033[31mred \\342\\200\\256evil\\n" >&2\nexit 1\n' >"$FX/bin/escapes"
    chmod +x "$FX/bin/escapes"
    printf '#!/bin/sh\necho "server: bind 127.0.0.1:8080: Address already in use" >&2\nexit 1\n' >"$FX/bin/dies"
    printf '#!/bin/sh\necho "listening on 127.0.0.1:1"\necho "no worker runs: giving up" >&2\nexit 0\n' >"$FX/bin/quits"
    printf 'not a program\n' >"$FX/bin/notexec"
    chmod +x "$FX/bin/silent" "$FX/bin/dies" "$FX/bin/quits"
    make -s -C "$ROOT" 01-iterative >/dev/null
    export ROOT FX
}

teardown() { [[ -z ${ASNOBODY_DIR:-} ]] || rm -rf "$ASNOBODY_DIR"; }

setup() {
    bats_require_minimum_version 1.5.0
    bats_load_library bats-support
    bats_load_library bats-assert
}

# one_line_error TOOL WORDS ARGS...: harness/TOOL ARGS exits 2 with one line holding WORDS, and
# nothing else. bad_input is harness/run's, grade_bad harness/grade's.
one_line_error() {
    local tool=$1 want=$2
    shift 2
    run -2 timeout 60 "$ROOT/harness/$tool" "$@" </dev/null
    assert_output --partial "$want"
    assert_equal "${#lines[@]}" 1
}
bad_input() { one_line_error run "$@"; }
grade_bad() { one_line_error grade "$@"; }

@test "bad input: an unknown chapter" { bad_input "unknown chapter '42'" 42; }
@test "bad input: no chapter" { bad_input "which chapter?"; }
@test "bad input: an unknown option" { bad_input "unknown option '--frobnicate'" 05 --frobnicate; }
@test "bad input: an unknown check" { bad_input "unknown check 'nosuch'" 01 --only nosuch; }
@test "bad input: only checks that do not apply to the chapter" { bad_input "no check asked for applies to 01-iterative (pool is for 04)" 01 --only pool; }
@test "bad input: an option without its value" { bad_input "needs a value" 01 --bin; }
@test "bad input: a missing binary" { bad_input "no file at" 01 --bin "$FX/bin/missing"; }
@test "bad input: a file that is not executable" { bad_input "is not executable" 01 --bin "$FX/bin/notexec"; }
@test "bad input: --bin with two chapters" { bad_input "grade one chapter" 01 02 --bin "$FX/bin/dies"; }
@test "bad input: a submission that does not compile" { bad_input "does not compile" 01 --dir "$FX/nocompile"; }
@test "bad input: a directory without server.c" { bad_input "no server.c" 01 --dir "$FX/bin"; }
@test "bad input: a server that dies at start" { bad_input "did not start: exited (exit status 1) before printing its ready line" 01 --bin "$FX/bin/dies"; }
@test "bad input: a server that quits right after its ready line" { bad_input "did not start: died after its ready line, before it echoed anything (exit status 0); the last line of its stderr: no worker runs: giving up" 01 --bin "$FX/bin/quits"; }
@test "bad input: a server that never prints its ready line" { bad_input "did not start: printed no 'listening on ADDR:PORT' line within 10 s" 01 --bin "$FX/bin/silent"; }
@test "bad input: a submission that sets the sanitizers' options is refused" { bad_input "defines __tsan_default_options" 01 --dir "$FX/forger"; }
@test "bad input: --extra-checks without checks" { bad_input "no .bats file in" 01 --extra-checks "$FX/bin"; }

@test "grade, bad input: no such folder" { grade_bad "no folder at" "$FX/nosuch" --chapter 05; }
@test "grade, bad input: no chapter" { grade_bad "required: --chapter" "$FX/class"; }
@test "grade, bad input: an unknown chapter" { grade_bad "unknown chapter '42'" "$FX/class" --chapter 42; }
@test "grade, bad input: more jobs than CPUs" { grade_bad "--jobs 999: between 1 and the" "$FX/class" --chapter 05 --jobs 999; }
@test "grade, bad input: a folder with no submission" { grade_bad "no submission in" "$FX/empty" --chapter 05 --out "$BATS_TEST_TMPDIR/o"; }

@test "untrusted text: a dying server's escapes and bidi overrides reach neither the terminal nor the reports" {
    run -2 "$ROOT/harness/run" 01 --bin "$FX/bin/escapes" --json "$BATS_TEST_TMPDIR/r.json"
    assert_output --partial "did not start: exited (exit status 1)"
    assert_output --partial "?[31mred ?evil"
    refute_output --regexp $'[\r\033]'
    run ! grep -qP '\\u001b|\\u202e|\x1b' "$BATS_TEST_TMPDIR/r.json"
    run -0 python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["error"])' "$BATS_TEST_TMPDIR/r.json"
    assert_output --partial "?[31mred ?evil"
}

@test "untrusted text: cleaned, CSV cells neutralised, Markdown cells escaped, slugs distinct" {
    run -0 python3 - "$ROOT/harness/lib" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from untrusted import clean, csv_cell, md_cell, slug, display_name, same_student_key
assert clean("a\x1b[2Kb\rc\td\u202ee\x9bf") == "a?[2Kbc d?e?f", clean("a\x1b[2Kb\rc\td\u202ee\x9bf")
assert clean(b"Zo\xeb") == "Zo\\xeb"
assert clean("x\ny", newlines=False) == "x y"
for bad in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
    assert csv_cell(bad).startswith("'"), (bad, csv_cell(bad))
assert csv_cell("alice") == "alice" and csv_cell(75) == 75
assert md_cell("a|b<i>`c`") == "a\\|b&lt;i&gt;\\`c\\`", md_cell("a|b<i>`c`")
names = [b"Zo\xc3\xab", b"Zoe\xcc\x81", b"Zo\xc3\xa9", b"Zo\xeb", b"a" * 251, b"a" * 250 + b"b"]
slugs = [slug(n) for n in names]
assert len(set(slugs)) == len(slugs) and all(len(s) <= 49 for s in slugs), slugs
assert same_student_key(display_name(b"Zoe\xcc\x81")) == same_student_key(display_name(b"Zo\xc3\xa9"))
assert same_student_key(display_name(b"Zo\xc3\xab")) != same_student_key(display_name(b"Zo\xc3\xa9"))
PY
}

@test "jail uids: two gradings at once never share one, and a slot is free again once its holder ends" {
    local d=$BATS_TEST_TMPDIR/locks
    exec {a}> >(exec python3 "$ROOT/harness/lib/uidlock.py" "$d" 10 >"$BATS_TEST_TMPDIR/a")
    wait_file() { for _ in {1..100}; do [[ -s $1 ]] && return 0; sleep 0.05; done; return 1; }
    wait_file "$BATS_TEST_TMPDIR/a"
    exec {b}> >(exec python3 "$ROOT/harness/lib/uidlock.py" "$d" 10 >"$BATS_TEST_TMPDIR/b" {a}>&-)
    wait_file "$BATS_TEST_TMPDIR/b"
    assert_equal "$(cat "$BATS_TEST_TMPDIR/a") $(cat "$BATS_TEST_TMPDIR/b")" "0 1"
    exec {a}>&-
    sleep 0.3
    run -0 timeout 10 python3 "$ROOT/harness/lib/uidlock.py" "$d" 10 </dev/null
    assert_output 0
    exec {b}>&-
    # A folder another user could write is refused.
    mkdir -p "$BATS_TEST_TMPDIR/open" && chmod 777 "$BATS_TEST_TMPDIR/open"
    run -2 python3 "$ROOT/harness/lib/uidlock.py" "$BATS_TEST_TMPDIR/open" 10 </dev/null
}

@test "--logs DIR: the failed checks' logs go there, replacing what was there; nothing is kept when all pass" {
    mkdir -p "$BATS_TEST_TMPDIR/kept/old"
    run -0 "$ROOT/harness/run" 01 --only echo --logs "$BATS_TEST_TMPDIR/kept"
    assert_output --partial "1 passed, 0 failed"
    assert [ ! -e "$BATS_TEST_TMPDIR/kept" ]
    run -1 "$ROOT/harness/run" 03 --bin "$ROOT/01-iterative/server" --only concurrency --logs "$BATS_TEST_TMPDIR/kept"
    assert_output --partial "Logs of the failed checks: $BATS_TEST_TMPDIR/kept"
    assert [ -f "$BATS_TEST_TMPDIR/kept/03-threads/concurrency/bats.tap" ]
    assert_line "        logs: $BATS_TEST_TMPDIR/kept/03-threads/concurrency"
}

@test "by default the failed checks' logs go to ./lab-logs, the next run replaces them, and TMPDIR keeps nothing" {
    mkdir "$BATS_TEST_TMPDIR/tmp" "$BATS_TEST_TMPDIR/here"
    cd "$BATS_TEST_TMPDIR/here"
    LAB_LOGS="" TMPDIR="$BATS_TEST_TMPDIR/tmp" run -1 "$ROOT/harness/run" 03 --bin "$ROOT/01-iterative/server" --only concurrency
    assert_output --partial "Logs of the failed checks: $BATS_TEST_TMPDIR/here/lab-logs"
    assert [ -f "$BATS_TEST_TMPDIR/here/lab-logs/03-threads/concurrency/bats.tap" ]
    run find "$BATS_TEST_TMPDIR/tmp" -mindepth 1 -maxdepth 1
    assert_output ""
    LAB_LOGS="" TMPDIR="$BATS_TEST_TMPDIR/tmp" run -0 "$ROOT/harness/run" 01 --only echo
    assert [ ! -e "$BATS_TEST_TMPDIR/here/lab-logs" ]
    run find "$BATS_TEST_TMPDIR/tmp" -mindepth 1 -maxdepth 1
    assert_output ""
    # Never a folder that holds the lab or the current one: it is replaced whole.
    run -2 "$ROOT/harness/run" 01 --only echo --logs "$BATS_TEST_TMPDIR"
    assert_output --partial "which holds"
}

@test "as nobody, a submission is graded from a lab tree nobody cannot write, the load generator built into nobody's cache" {
    ((EUID == 0)) || skip "needs root, to grade as nobody"
    local t c
    t=$(mktemp -d /tmp/lab-asnobody.XXXXXX)
    ASNOBODY_DIR=$t  # teardown removes it
    chmod 755 "$t"
    mkdir -p "$t/lab" "$t/home" "$t/sub"
    # The tree git knows, as root leaves it, with no load generator built.
    (cd "$ROOT" && git ls-files -co --exclude-standard -- harness Makefile '0*/*.c' | grep -v '^harness/loadgen/loadgen$' |
        tar -cf - -T - | tar -xf - -C "$t/lab")
    cp "$ROOT/08-reuseport-hybrid/server.c" "$t/sub/"
    chmod -R a+rX,go-w "$t/lab" "$t/sub"
    chown nobody "$t/home"
    run setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH=/usr/bin:/bin HOME="$t/home" \
        LAB_TOOLS="${LAB_TOOLS_DIR:-}" bash -c "cd '$t/home' && '$t/lab/harness/run' 08 --dir '$t/sub' --only build,supervise"
    c=$(find "$t/home/.cache/concurrent-servers-lab/loadgen" -name 'loadgen-*' -type f -perm -u+x 2>/dev/null | wc -l)
    assert_success
    assert_output --partial "PASS  supervise"
    assert_equal "$c" 1
}

@test "reports: --json and --junit agree with the run, a test case per bats test" {
    run -0 "$ROOT/harness/run" 01 --only build,echo --json "$BATS_TEST_TMPDIR/r.json" --junit "$BATS_TEST_TMPDIR/r.xml"
    assert_line --index -1 '2 passed, 0 failed, 8 skipped'
    run -0 python3 - "$BATS_TEST_TMPDIR" <<'PY'
import json, sys, xml.etree.ElementTree as ET
tmp = sys.argv[1]
r = json.load(open(f"{tmp}/r.json"))
c = r["chapters"]["01-iterative"]
assert r["passed"] == 2 and r["failed"] == 0 and "error" not in r, r
ran = [x for x in c["checks"] if x["status"] != "skip"]
assert [x["check"] for x in ran] == ["build", "echo"], c
# Out of the chapter's full maximum: the checks not asked for count 0 and are listed as not run.
assert c["score"] == 20 and c["max"] == sum(x["max_points"] for x in c["checks"]) > 20, c
assert set(c["not_run"]) == {x["check"] for x in c["checks"]} - {"build", "echo"}, c
ntests = sum(len(x["tests"]) for x in ran)
assert ntests >= 8 and all(t["status"] == "pass" or (t["status"] == "skip" and "07, 08" in t["name"]) for x in ran for t in x["tests"]), c
suite = ET.parse(f"{tmp}/r.xml").getroot().find("testsuite")
assert suite.get("name") == "01-iterative" and suite.get("failures") == "0"
assert int(suite.get("tests")) == ntests + len(c["not_run"]), suite.attrib
assert {t.get("classname") for t in suite if t.find("skipped") is None} == {"01-iterative.build", "01-iterative.echo"}
PY
}

@test "--fail-fast: after a check's first failed test, its other tests are skipped and say why" {
    "$ROOT/harness/bughunt" --source "$ROOT/harness/tests/broken/01-strlen-echo.patch" "$BATS_TEST_TMPDIR/server.c"
    run -1 "$ROOT/harness/run" 01 --dir "$BATS_TEST_TMPDIR" --only echo --fail-fast --json "$BATS_TEST_TMPDIR/r.json"
    run -0 python3 - "$BATS_TEST_TMPDIR/r.json" <<'PY'
import json, sys
tests = next(c for c in json.load(open(sys.argv[1]))["chapters"]["01-iterative"]["checks"] if c["check"] == "echo")["tests"]
status = [t["status"] for t in tests]
first = status.index("fail")  # strlen() stops at the first NUL: the 64 KiB binary test
assert status[:first] == ["pass"] * first and len(status) > first + 1, status
assert all(t["status"] == "skip" and "--fail-fast" in t["message"] for t in tests[first + 1:]), tests
PY
}

@test "reports: --gradescope gives every check its full points, 0 when it did not run, and says why" {
    run -0 "$ROOT/harness/run" 01 --only build,memcheck --quick --gradescope "$BATS_TEST_TMPDIR/g.json"
    run -2 "$ROOT/harness/run" 01 --dir "$FX/nocompile" --gradescope "$BATS_TEST_TMPDIR/e.json"
    run -0 python3 - "$BATS_TEST_TMPDIR" <<'PY'
import json, sys
tmp = sys.argv[1]
g = json.load(open(f"{tmp}/g.json"))
t = {x["name"]: x for x in g["tests"]}
assert g["score"] == 5 and {"01-iterative: build", "01-iterative: memcheck", "01-iterative: echo"} <= set(t), g
assert t["01-iterative: build"]["score"] == t["01-iterative: build"]["max_score"] == 5, g
m = t["01-iterative: memcheck"]
assert m["score"] == 0 and m["max_score"] > 0 and m["output"] == "not run: --quick", m
e = t["01-iterative: echo"]
assert e["score"] == 0 and e["max_score"] > 0 and e["output"] == "not run: not asked for (--only)", e
assert all(x["visibility"] == "visible" for x in g["tests"]), g
e = json.load(open(f"{tmp}/e.json"))
assert e["score"] == 0 and "does not compile" in e["output"], e
PY
}

@test "--extra-checks: an instructor's check is graded, and hidden in Gradescope's results until published" {
    run -0 "$ROOT/harness/run" 01 --only byte-by-byte --extra-checks "$ROOT/harness/tests/extra" --gradescope "$BATS_TEST_TMPDIR/g.json"
    assert_line --partial "PASS  byte-by-byte"
    run -0 python3 - "$BATS_TEST_TMPDIR/g.json" <<'PY'
import json, sys
t = {x["name"]: x for x in json.load(open(sys.argv[1]))["tests"]}
x = t["01-iterative: byte-by-byte"]
assert x["score"] == x["max_score"] == 5 and x["visibility"] == "after_published", x
assert t["01-iterative: echo"]["visibility"] == "visible", t
PY
}

@test "reports: a set-up error is in the reports" {
    run -2 "$ROOT/harness/run" 01 --dir "$FX/nocompile" --json "$BATS_TEST_TMPDIR/e.json" --junit "$BATS_TEST_TMPDIR/e.xml"
    run -0 python3 - "$BATS_TEST_TMPDIR" <<'PY'
import json, sys, xml.etree.ElementTree as ET
tmp = sys.argv[1]
e = json.load(open(f"{tmp}/e.json"))
assert "does not compile" in e["error"], e
err = ET.parse(f"{tmp}/e.xml").getroot().find("testsuite/testcase/error")
assert err is not None and "does not compile" in err.get("message")
PY
}

@test "Ctrl-C during a check: exit 2, no process and no temporary directory left" {
    local pid status server="$BATS_TEST_TMPDIR/server"
    mkdir "$BATS_TEST_TMPDIR/tmp"
    cp "$ROOT/01-iterative/server" "$server" # its own copy: other gradings may run 01 meanwhile
    # A background job of a script starts with SIGINT ignored, and bash cannot trap a signal
    # ignored at entry: restore the default first, as a terminal's foreground job would have it.
    TMPDIR="$BATS_TEST_TMPDIR/tmp" setsid python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
        "$ROOT/harness/run" 01 --bin "$server" --only idle-cpu >"$BATS_TEST_TMPDIR/out" 2>&1 3>&- &
    pid=$!
    # Inside the check: its processes run from the run's temporary directory (made just before the
    # interrupt handler is set), then 100 connections are held and CPU measured. On a loaded
    # machine (make check grades four chapters at a time) getting there takes more than 2.5 s.
    for _ in $(seq 120); do
        pgrep -f "$BATS_TEST_TMPDIR/tmp/lab-run" >/dev/null && break
        sleep 0.5
    done
    sleep 2.5
    kill -INT "$pid"
    wait "$pid" || status=$?
    assert_equal "${status:-0}" 2
    sleep 0.5
    run pgrep -f "$BATS_TEST_TMPDIR/tmp/lab-run"
    assert_output ""
    run find "$BATS_TEST_TMPDIR/tmp" -mindepth 1 -maxdepth 1 -name 'lab-run.*'
    assert_output ""
}

@test "plain bats: every check on 01 (LAB_QUICK=1) passes and writes only in bats' temporary directories" {
    run "$ROOT/harness/tests/plain-bats.sh" 01
    assert_success
}

# A stop signal that reaches a child of 02 between fork() and the moment its wake_fd becomes its
# client's socket would run the handler on the listening socket it shares with the parent: the
# parent's accept() would fail and nobody else be served. A fork() that raises SIGTERM in every
# child at once (LD_PRELOAD) makes that moment certain: the stop signals are blocked across
# fork(), so each child ends only its own session, and the parent serves the next client.
@test "02: a stop signal in a child just forked ends its session, never the parent's listener" {
    local shim=$BATS_TEST_TMPDIR/forkterm.so out=$BATS_TEST_TMPDIR/out err=$BATS_TEST_TMPDIR/err pid port
    printf '%s\n' '#define _GNU_SOURCE' '#include <dlfcn.h>' '#include <signal.h>' '#include <unistd.h>' \
        'pid_t fork(void) { pid_t (*real)(void) = (pid_t (*)(void))dlsym(RTLD_NEXT, "fork"); pid_t p = real(); if (p == 0) raise(SIGTERM); return p; }' \
        >"$BATS_TEST_TMPDIR/forkterm.c"
    gcc -shared -fPIC -o "$shim" "$BATS_TEST_TMPDIR/forkterm.c" -ldl
    make -s -C "$ROOT" 02-fork >/dev/null
    LD_PRELOAD=$shim "$ROOT/02-fork/server" -p 0 >"$out" 2>"$err" </dev/null &
    pid=$!
    port=$(python3 "$ROOT/harness/lib/proctool.py" ready "$out" "$pid" 10) || port=""
    if [[ -n $port ]]; then
        for _ in 1 2 3; do
            timeout 10 python3 -c 'import socket, sys; s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5); s.sendall(b"x"); s.settimeout(5); s.recv(1)' "$port" || true
        done
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true
    assert [ -n "$port" ]
    run grep -c '^+ ' "$err"
    assert_output 3
}

# make sync never loses an edit: a tree of its own (the chapters, harness/sync, harness/common).
sync_tree() {
    T=$BATS_TEST_TMPDIR/tree
    mkdir -p "$T/harness"
    cp -r "$ROOT"/0[1-9]-* "$T/"
    cp -r "$ROOT/harness/common" "$T/harness/"
    cp "$ROOT/harness/sync" "$T/harness/"
}

@test "sync: an edit made in a copy is refused until told which side wins, then goes where it is told" {
    sync_tree
    sed -i '/==== shared: echo-session /a /* an edit made in the copy */' "$T/02-fork/server.c"
    printf '/* an edit made in the source */\n' >>"$T/harness/common/boilerplate.c"
    cp "$T/02-fork/server.c" "$BATS_TEST_TMPDIR/before.c"
    run -2 "$T/harness/sync"
    assert_output --partial "02-fork/server.c:echo-session was edited by hand"
    run cmp "$T/02-fork/server.c" "$BATS_TEST_TMPDIR/before.c"
    assert_success
    run grep -c 'an edit made in the source' "$T/03-threads/server.c"
    assert_output 0
    # The copy wins: 01 (the lesson's source) and every other copy get it.
    run -0 "$T/harness/sync" --keep-copy 02-fork/server.c:echo-session
    run grep -l 'an edit made in the copy' "$T"/0[1-4]-*/server.c
    assert_equal "${#lines[@]}" 4
    run grep -c 'an edit made in the source' "$T/03-threads/server.c"
    assert_output 1
    run -0 "$T/harness/sync" --check
    # The source wins: the copy's edit is overwritten.
    sed -i '/==== shared: echo-session /a /* a second edit in the copy */' "$T/03-threads/server.c"
    run -2 "$T/harness/sync"
    run -0 "$T/harness/sync" --keep-source 03-threads/server.c:echo-session
    run grep -c 'a second edit in the copy' "$T/03-threads/server.c"
    assert_output 0
    run -0 "$T/harness/sync" --check
}

@test "sync: a mistyped or unpaired marker, or an unknown region, stops it with its line, changing nothing" {
    sync_tree
    sed -i 's|^/\* ==== end shared: boilerplate.c ==== \*/|/* ==== end shared: boilerplat.c ==== */|' "$T/05-select/server.c"
    run -2 "$T/harness/sync" --check
    assert_output --partial "05-select/server.c"
    assert_output --partial "boilerplat.c"
    sync_tree
    sed -i 's|^/\* ==== shared: conn-buffers.h |/* ==== shared: conn-bufers.h |' "$T/06-poll/server.c"
    run -2 "$T/harness/sync"
    assert_output --partial "unknown region 'conn-bufers.h'"
}
