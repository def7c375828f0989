# shellcheck shell=bash
# Helpers shared by the checks (harness/checks/*.bats). Every check file starts with
#
#   setup_file() { load ../lib/check && lab_setup_file; }
#   setup() { load ../lib/check && lab_setup; }
#   teardown() { lab_teardown; }
#
# and runs under plain bats as well as under harness/run:
#
#   LAB_SERVER=06-poll/server bats harness/checks/echo.bats
#
# What a check reads (harness/run sets them all; under plain bats only LAB_SERVER is needed):
#   LAB_SERVER    the server binary under test
#   LAB_CHAPTER   01 ... 08 (or 06-poll); by default from the directory of LAB_SERVER
#   LAB_SRC       its server.c; by default the server.c beside LAB_SERVER; empty: no source (--bin)
#   LAB_LOG       where server and client logs go; by default bats' $BATS_FILE_TMPDIR
#   LAB_QUICK     1: the slow checks' tests skip;  LAB_SCALE  1: limits' --scale test runs
#   LAB_PYTHON    the Python 3 interpreter of the clients and tools; by default python3's
#   LAB_JAIL_DIR  the submission's scratch directory (its home and working directory); by default
#                 one in $BATS_FILE_TMPDIR. LAB_SANDBOX_KIND and LAB_JAIL_UID: see lib/sandbox.bash
#
# Every process of the submission (the server, its builds) starts in a sandbox of its own, nested
# in the check's, then through jail_argv (lib/sandbox.bash: inner_argv and jail_argv): its own PID
# namespace and mount view (the system's read-only directories, its binary at /lab/server, RAM
# directories of its own), a clean environment, limits, and under harness/run an unprivileged uid.
# Its stdout, stderr and tool log (fd 9) reach the log files through pipes drained by the check: it
# can add to its logs, never rewrite them. The check sees it from outside: SERVER_PID is the server
# process, SERVER_SCOPE every process of the submission (proctool.py's "tree:INIT").
#
# A check fails with one sentence for the student, through bats-support's fail: what was
# observed, in plain words ("3 zombie children 4 s after 300 clients left"). The check's hint (its
# header) names the likely mistake; harness/run prints both.
#
# What a student reads goes through GNU gettext (lib/i18n.bash, harness/po): "$(gettext 'text')",
# or "$(eval_gettext 'text with $var')", whose msgid is the English text itself. eval_gettext
# substitutes the $variables of its single-quoted msgid itself, after translation: shellcheck sees
# them neither expanded (SC2016) nor read (SC2034).
# shellcheck disable=SC2016,SC2034

# The lab's tree: harness/run says where (an instructor's extra checks live elsewhere).
LAB_ROOT=${LAB_ROOT_DIR:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
# shellcheck source=harness/lib/i18n.bash
source "$LAB_ROOT/harness/lib/i18n.bash"
LAB_CLIENT="$LAB_ROOT/harness/clients/echo_client.py"
LAB_PROC="$LAB_ROOT/harness/lib/proctool.py"
LAB_LOADGEN=${LAB_LOADGEN:-$LAB_ROOT/harness/loadgen/loadgen}  # harness/run's, or the lab's build
# shellcheck source=harness/lib/sandbox.bash
source "$LAB_ROOT/harness/lib/sandbox.bash"
LAB_START_TIMEOUT=${LAB_START_TIMEOUT:-10}  # seconds a server has to print its ready line
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-120}       # seconds a test client may run
SERVER_K=0

# lab_header KEY [FILE]: the value of "# KEY: value" in a check file's header.
lab_header() {
    sed -nE "1,20s/^# $1: *(.*)$/\\1/p" "${2:-$BATS_TEST_FILENAME}" | head -n 1
}

# Once per file: resolve what the tests need and export it to them.
lab_setup_file() {
    local dir
    if [[ -z ${LAB_SERVER:-} ]]; then
        printf '%s\n' "$(eval_gettext 'set LAB_SERVER to the server to check, e.g. LAB_SERVER=06-poll/server bats $BATS_TEST_FILENAME')" >&2
        return 1
    fi
    [[ $LAB_SERVER == /* ]] || LAB_SERVER="$PWD/$LAB_SERVER"
    if [[ ! -x $LAB_SERVER ]]; then
        printf '%s\n' "$(eval_gettext 'no server binary at $LAB_SERVER (build it first, e.g. make 06-poll)')" >&2
        return 1
    fi
    dir=$(basename "$(dirname "$LAB_SERVER")")
    LAB_CHAPTER=${LAB_CHAPTER:-$dir}
    LAB_CHAPTER=${LAB_CHAPTER:0:2}
    LAB_CHAPTER_DIR=$(cd "$LAB_ROOT" && compgen -G "$LAB_CHAPTER-*" | head -n 1)
    if [[ ! $LAB_CHAPTER =~ ^0[1-9]$ || -z $LAB_CHAPTER_DIR ]]; then
        printf '%s\n' "$(eval_gettext 'which chapter is $LAB_SERVER? Set LAB_CHAPTER (01 to 08)')" >&2
        return 1
    fi
    if [[ -z ${LAB_SRC+set} && -f $(dirname "$LAB_SERVER")/server.c ]]; then
        LAB_SRC="$(dirname "$LAB_SERVER")/server.c"
    fi
    LAB_LOG=${LAB_LOG:-$BATS_FILE_TMPDIR}
    if [[ -z ${LAB_JAIL_DIR:-} ]]; then
        LAB_JAIL_DIR="$BATS_FILE_TMPDIR/jail"
        mkdir -p "$LAB_JAIL_DIR"
    fi
    # The interpreter itself, found once: python3 may be a wrapper (pyenv's shim costs 0.15 s a call).
    LAB_PYTHON=${LAB_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
    # A backstop per test, below harness/run's limit for the whole file (valgrind is slow).
    if [[ -z ${BATS_TEST_TIMEOUT:-} ]]; then
        if [[ $(lab_header slow) == yes ]]; then BATS_TEST_TIMEOUT=600; else BATS_TEST_TIMEOUT=150; fi
    fi
    export LAB_SERVER LAB_CHAPTER LAB_CHAPTER_DIR LAB_SRC=${LAB_SRC:-} LAB_LOG LAB_PYTHON BATS_TEST_TIMEOUT LAB_JAIL_DIR
}

# Before each test: bats-support (its fail), and a skip (with its reason) when the check does not
# apply to this chapter, or is slow and --quick was asked for. The checks fail with a sentence for
# the student rather than bats-assert's generic reports, which harness/tests/harness.bats uses.
lab_setup() {
    bats_require_minimum_version 1.5.0
    bats_load_library bats-support
    local chapters check
    check=$(basename "$BATS_TEST_FILENAME" .bats)
    chapters=$(lab_header chapters)
    if [[ $chapters != all && " $chapters " != *" $LAB_CHAPTER "* ]]; then
        skip "$(eval_gettext '$check applies to chapters $chapters, not to $LAB_CHAPTER_DIR')"
    fi
    if [[ ${LAB_QUICK:-0} == 1 && $(lab_header slow) == yes ]]; then
        skip "$(eval_gettext '$check is slow (LAB_QUICK=1)')"
    fi
    # --fail-fast (LAB_FAIL_FAST=1): a check is lost with its first failed test; the others wait out
    # their own time limits for nothing.
    if [[ ${LAB_FAIL_FAST:-0} == 1 && -e $BATS_FILE_TMPDIR/lab-failed ]]; then
        skip "$(eval_gettext 'an earlier test of $check failed (--fail-fast)')"
    fi
}

# only_for CHAPTER... -- REASON: skip this test unless the chapter is one of those named. REASON is
# the student's sentence, translated by the caller ("$(gettext '...')"); so are not_for's and
# needs_source's.
only_for() {
    local list=()
    while [[ $1 != -- ]]; do list+=("$1"); shift; done
    shift
    [[ " ${list[*]} " == *" $LAB_CHAPTER "* ]] || skip "$*"
}

# not_for CHAPTER... -- REASON: skip this test for the chapters named.
not_for() {
    local list=()
    while [[ $1 != -- ]]; do list+=("$1"); shift; done
    shift
    [[ " ${list[*]} " != *" $LAB_CHAPTER "* ]] || skip "$*"
}

# needs_source: skip this test when the server was given without its source (--bin).
needs_source() {
    local reason="$*"
    [[ -n $LAB_SRC ]] || skip "$(eval_gettext 'no source to compile (graded with --bin); $reason')"
}

# Whatever a test started is killed, whatever happened.
lab_teardown() {
    local pg
    # bats sets BATS_TEST_COMPLETED when the test ran to its end (or skipped): not set, it failed.
    [[ -n ${BATS_TEST_COMPLETED:-} ]] || : >"$BATS_FILE_TMPDIR/lab-failed"
    if [[ -f $LAB_LOG/pgids ]]; then
        # Collected here, with stderr closed: bash reports a job it sees killed ("Killed"). A
        # submission's sandbox ends with its init ("init:PID"): the kernel kills its whole tree.
        while read -r pg; do
            if [[ $pg == init:* ]]; then
                kill -KILL "${pg#init:}" 2>/dev/null
                continue
            fi
            { kill -KILL -- "-$pg" && wait "$pg"; } 2>/dev/null || true
        done <"$LAB_LOG/pgids"
        : >"$LAB_LOG/pgids"
    fi
    # The log drains end once every writer is gone; one held open by a process that left the
    # server's group ends with the check's PID namespace, or here.
    drains_settle 1 || kill -KILL "${DRAIN_PIDS[@]}" 2>/dev/null
    DRAIN_PIDS=()
    return 0
}

# pid_running PID: the process exists and is not a zombie (read from /proc: no fork, as this is
# polled at every test's end).
pid_running() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# drains_settle SECONDS: wait until the log drains of the servers started have written all they
# were given (every writer closed its end), at most SECONDS; 1 if some are still running. They
# end within milliseconds of their writers: polled every 10 ms.
DRAIN_PIDS=()
drains_settle() {
    local p limit_ms=$(($(now_ms) + $1 * 1000))
    for p in "${DRAIN_PIDS[@]}"; do
        while pid_running "$p"; do
            (($(now_ms) < limit_ms)) || return 1
            sleep 0.01
        done
    done
}

# What the checks need to know of a chapter's model beyond their own tables: whether it serves
# every client at once (01 serves one at a time, 04 -w N at a time).
lab_serves_all() { [[ $LAB_CHAPTER != 01 && $LAB_CHAPTER != 04 ]]; }

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

# wait_until SECONDS COMMAND...: run COMMAND every 50 ms until it succeeds; 1 if it never does.
# poll_until: the same every 5 ms, for what comes within milliseconds (a cheap COMMAND).
wait_until() { POLL_SECONDS=0.05 poll_every "$@"; }
poll_until() { POLL_SECONDS=0.005 poll_every "$@"; }
poll_every() {
    local limit_ms=$(($(now_ms) + ${1%.*} * 1000))
    shift
    until "$@"; do
        (($(now_ms) >= limit_ms)) && return 1
        sleep "$POLL_SECONDS"
    done
}

# Observations through /proc (harness/lib/proctool.py says what each subcommand prints).
proc() { "$LAB_PYTHON" "$LAB_PROC" "$@"; }

# server_start [WRAPPER... --] [SERVER OPTIONS...]
# Starts the server on 127.0.0.1, port 0, in its own process group (setsid), in the submission's
# own sandbox and through the jail (lib/sandbox.bash), stdout and stderr drained into files by the
# check (at most 64 MiB each), fd 3 closed (bats would wait for it). A tool's log goes to fd 9
# (valgrind --log-fd=9, strace -o /proc/self/fd/9), drained into $SERVER_TOOL_LOG. Waits for the
# ready line and sets SERVER_PID (the server process), SERVER_JOB (what this shell waits for: the
# sandbox's bwrap, whose exit status is the server's), SERVER_SCOPE (every process of the
# submission, for proctool.py), SERVER_PORT, SERVER_OUT and SERVER_ERR. A wrapper (valgrind ...,
# prlimit ...) goes before "--".
server_start() {
    local wrap=() tracer=() rc o e t no_as="" info init how stderr_end
    if [[ " $* " == *" -- "* ]]; then
        while [[ $1 != -- ]]; do wrap+=("$1"); shift; done
        shift
    fi
    # strace observes the submission from outside its jail (inside its sandbox): it keeps the
    # harness's uid, so it can open its log (fd 9, a pipe of the check's) and the server cannot
    # touch the tracer or what it writes. valgrind is the server's own process: inside the jail.
    if [[ ${wrap[0]:-} == strace ]]; then
        tracer=("${wrap[@]}")
        wrap=()
    fi
    # valgrind and the sanitizers reserve address space they never use: the cgroup bounds them.
    [[ ${wrap[0]:-} == valgrind || $LAB_SERVER == */server-[a-z]*san ]] && no_as=--no-as
    # Named after the test and the server's rank in it, and created empty before the server
    # starts: the ready-line wait must never read the previous server's file.
    SERVER_K=$((SERVER_K + 1))
    SERVER_N="${BATS_TEST_NUMBER:-0}-$SERVER_K"
    SERVER_OUT="$LAB_LOG/server$SERVER_N.out"
    SERVER_ERR="$LAB_LOG/server$SERVER_N.err"
    SERVER_TOOL_LOG="$LAB_LOG/server$SERVER_N.tool"
    info="$LAB_LOG/server$SERVER_N.sandbox"
    inner_argv "$LAB_LOG/server$SERVER_N.args" --exe --info
    local server=$LAB_SERVER
    if ((${#INNER_ARGV[@]})); then
        jail_argv "$INNER_HOME" $no_as
        server=/lab/server
    else
        jail_argv "$LAB_JAIL_DIR" $no_as
    fi
    : >"$SERVER_OUT"
    : >"$SERVER_ERR"
    : >"$info"
    printf '%s\n' "${wrap[*]} $LAB_SERVER -p 0 -b 127.0.0.1 $*" >"$LAB_LOG/server$SERVER_N.cmd"
    # Each drain holds only its own pipe (else one would wait for another's end of file).
    exec {o}> >(exec stdbuf -o0 head -c "$JAIL_LOG_MAX" >"$SERVER_OUT" 3>&-)
    DRAIN_PIDS+=($!)
    exec {e}> >(exec stdbuf -o0 head -c "$JAIL_LOG_MAX" >"$SERVER_ERR" 3>&- {o}>&-)
    DRAIN_PIDS+=($!)
    exec {t}> >(exec stdbuf -o0 head -c "$JAIL_LOG_MAX" >"$SERVER_TOOL_LOG" 3>&- {o}>&- {e}>&-)
    DRAIN_PIDS+=($!)
    setsid "${INNER_ARGV[@]}" "${tracer[@]}" "${JAIL_ARGV[@]}" "${wrap[@]}" "$server" -p 0 -b 127.0.0.1 "$@" \
        >&"$o" 2>&"$e" 9>&"$t" {o}>&- {e}>&- {t}>&- </dev/null 3>&- 8<"$LAB_LOG/server$SERVER_N.args" 7<"$LAB_SERVER" 6>"$info" &
    SERVER_JOB=$!
    SERVER_PID=$SERVER_JOB SERVER_SCOPE="group:$SERVER_JOB"
    exec {o}>&- {e}>&- {t}>&-
    echo "$SERVER_JOB" >>"$LAB_LOG/pgids"
    if ((${#INNER_ARGV[@]})); then
        # The sandbox's init (bwrap says which), whose child is the server; its tree is the submission.
        # Both come within milliseconds: polled every 5 ms (every server start of every check pays it).
        poll_until "$LAB_START_TIMEOUT" sandbox_started "$info" || true
        init=$(sed -nE 's/^ *"child-pid": ([0-9]+),?$/\1/p' "$info")
        if [[ -n $init ]]; then
            echo "init:$init" >>"$LAB_LOG/pgids"
            SERVER_SCOPE="tree:$init"
            poll_until "$LAB_START_TIMEOUT" server_found "$init" || true
        fi
    fi
    SERVER_PORT=$(proc ready "$SERVER_OUT" "$SERVER_JOB" "$LAB_START_TIMEOUT") && return 0
    rc=$?
    if ((rc == 1)); then
        how=$(server_death)
        stderr_end=$(tail -n 2 "$SERVER_ERR" | tr '\n' ' ')
        fail "$(eval_gettext 'the server exited ($how) before printing its ready line; its stderr ends with: $stderr_end')"
        return
    fi
    fail "$(eval_gettext 'the server printed no '\''listening on ADDR:PORT'\'' line within $LAB_START_TIMEOUT s')"
}
sandbox_started() { grep -q '"child-pid"' "$1" || ! kill -0 "$SERVER_JOB" 2>/dev/null; }
# server_found INIT: the sandbox's init has its child, the server: SERVER_PID (or the sandbox ended).
# Under strace the child is the tracer, and the server its child.
server_found() {
    local child
    child=$(proc children "$1" | head -n 1)
    if [[ -n $child && $(cat "/proc/$child/comm" 2>/dev/null) == strace ]]; then
        child=$(proc children "$child" | head -n 1)
    fi
    if [[ -n $child ]]; then
        SERVER_PID=$child
        return 0
    fi
    ! kill -0 "$1" 2>/dev/null
}

server_alive() { kill -0 "$SERVER_PID" 2>/dev/null; }
# No live process of the submission left (its sandbox's tree, or its process group).
group_gone() { [[ -z $(proc pids "$SERVER_SCOPE") ]]; }

# stop_with_stuck PID WHAT: SIGSTOP the server's child PID (WHAT: "child", "worker", translated by
# the caller), then SIGTERM the server: it must exit 0 within 3 s with nothing left. A stopped
# process cannot act on SIGTERM (nor on PR_SET_PDEATHSIG): it is gone the moment the server exits
# only if the server killed it after a deadline and waited for it.
stop_with_stuck() {
    local pid=$1 what=$2
    kill -STOP "$pid"
    server_stop TERM 3 ||
        fail "$(eval_gettext 'still running 3 s after SIGTERM with one $what stopped: a $what that does not stop in time must get SIGKILL')"
    ((SERVER_STATUS == 0)) || fail "$(eval_gettext 'exit status $SERVER_STATUS after SIGTERM')"
    group_gone || fail "$(eval_gettext 'the stopped $what $pid was still there when the server exited: it must wait for every $what (and SIGKILL one that does not stop in time) before it exits')"
}
# Exited: gone, or a zombie waiting for its parent (this shell, or its sandbox's init) to collect
# its status. A process whose main thread returned while other threads still run also shows Z; it
# has not exited until /proc/PID/task holds the main thread alone (else `wait` below could block
# unbounded).
server_exited() {
    server_alive || return 0
    ! pid_running "$SERVER_PID" || return 1
    local tasks=(/proc/"$SERVER_PID"/task/*)
    ((${#tasks[@]} <= 1))
}

# server_stop [SIGNAL] [SECONDS]: send the signal (TERM), wait for the exit; sets SERVER_STATUS
# and SERVER_STOP_MS. Returns 1 if the server is still running after SECONDS (2).
server_stop() {
    local sig=${1:-TERM} secs=${2:-2} t0
    t0=$(now_ms)
    kill -s "$sig" "$SERVER_PID" 2>/dev/null
    if ! wait_until "$secs" server_exited; then
        SERVER_STOP_MS=$(($(now_ms) - t0))
        return 1
    fi
    # The sandbox's bwrap ends with the server, with its status (128 + N for a signal N).
    wait_until 2 job_ended || true
    wait "$SERVER_JOB"
    SERVER_STATUS=$?
    # shellcheck disable=SC2034 # read by the checks (shutdown.bats measures it)
    SERVER_STOP_MS=$(($(now_ms) - t0))
    drains_settle 2 || true
}

job_ended() { ! pid_running "$SERVER_JOB"; }

# How the server died, from the status bash saw.
server_death() {
    local st signal code
    wait_until 2 job_ended || true
    wait "$SERVER_JOB" 2>/dev/null
    st=$?
    drains_settle 2 || true
    if ((st > 128)); then
        signal=$(kill -l $((st - 128)) 2>/dev/null || echo $((st - 128)))
        # TRANSLATORS: how the server died, $how in "the server died $when ($how)"; $signal: KILL, SEGV...
        eval_gettext 'killed by signal $signal'
    else
        code=$st
        eval_gettext 'exit status $code'
    fi
}

# sanitizer_report FILE: a sanitizer's first report in one line, where a student looks first: its
# kind and the first frame in server.c ("AddressSanitizer: heap-use-after-free, in watch
# (server.c:102)"; a frame of the sanitizer's own interceptors names no line of theirs). Nothing
# when FILE holds no report.
sanitizer_report() {
    awk '
        !kind && /(ERROR|WARNING): [A-Za-z]+Sanitizer: / {
            s = $0; sub(/^.*(ERROR|WARNING): /, "", s); sub(/ (on|at|in|for) .*| \(.*/, "", s); kind = s; next }
        !kind && /runtime error: / { s = $0; sub(/^.*server\.c/, "server.c", s); print "UndefinedBehaviorSanitizer: " s; done = 1; exit }
        kind && /server\.c:[0-9]+/ {
            fn = ""
            if (match($0, / in [A-Za-z_][A-Za-z0-9_]* /)) fn = substr($0, RSTART + 4, RLENGTH - 5)
            else if (match($0, /#[0-9]+ [A-Za-z_][A-Za-z0-9_]* /)) { fn = substr($0, RSTART, RLENGTH - 1); sub(/^#[0-9]+ /, "", fn) }
            match($0, /server\.c:[0-9]+/)
            print kind ", in " fn " (" substr($0, RSTART, RLENGTH) ")"; done = 1; exit }
        END { if (kind && !done) print kind }' "$1" 2>/dev/null | cut -c1-200
}

# vg_first_error FILE PID: valgrind's first error or leak for process PID, with the first frame in
# server.c ("64 bytes in 1 blocks are definitely lost in loss record 1 of 1, in start_client
# (server.c:150)").
vg_first_error() {
    awk -v p="==$2==" '
        index($0, p) == 1 {
            l = substr($0, length(p) + 2)
            if (!what && (l ~ /^(Invalid|Conditional|Use of uninitialised|Mismatched|Syscall param|Source and destination)/ ||
                          l ~ /bytes in [0-9,]+ blocks are (definitely|indirectly) lost/)) { what = l; next }
            if (what && match(l, /[A-Za-z_][A-Za-z0-9_]* \(server\.c:[0-9]+\)/)) { print what ", in " substr(l, RSTART, RLENGTH); done = 1; exit }
        }
        END { if (what && !done) print what }' "$1" 2>/dev/null | cut -c1-240
}

# assert_server_alive WHILE: fail if the server died, saying how and while doing what. WHILE is
# the student's words, translated by the caller ("after 20 peers reset mid-stream").
assert_server_alive() {
    server_alive && return 0
    local when=$1 how last
    how=$(server_death)
    # Its last words: often the cause itself ("select: Bad file descriptor"), which a student
    # should not have to find in a log file; a sanitizer's report when there is one (its last line
    # is "==2==ABORTING").
    last=$(sanitizer_report "$SERVER_ERR")
    if [[ -n $last ]]; then
        # TRANSLATORS: $when: "after 20 peers reset mid-stream"...; $how: "exit status 1"...
        fail "$(eval_gettext 'the server died $when ($how); $last')"
        return
    fi
    last=$(grep -v -E '^[+-] |^\[w[0-9]+\] [+-] ' "$SERVER_ERR" 2>/dev/null | tail -n 1 | cut -c1-200 || true)
    if [[ -n $last ]]; then
        fail "$(eval_gettext 'the server died $when ($how); the last line of its stderr: $last')"
    else
        fail "$(eval_gettext 'the server died $when ($how)')"
    fi
}

# measured TEXT: a figure shown under the check's result (bats prints fd 3 as a TAP comment). TEXT
# is the student's, translated by the caller; "# measured: " is what harness/lib/report.py reads.
measured() { printf '# measured: %s\n' "$*" >&3; }

# client SUBCOMMAND ARGS...: run the Python test client against the server; on failure its
# one-line explanation is the test's failure.
client() {
    local out="$LAB_LOG/client.$1.$SERVER_N" rc test_client=$1
    timeout -k 5 "$CLIENT_TIMEOUT" "$LAB_PYTHON" "$LAB_CLIENT" "$SERVER_PORT" "$@" >"$out" 2>&1 && return 0
    rc=$?
    if ((rc == 124)); then
        fail "$(eval_gettext 'the test client '\''$test_client'\'' did not finish within $CLIENT_TIMEOUT s')"
        return
    fi
    assert_server_alive "$(eval_gettext 'during '\''$test_client'\''')" || return
    fail "$(tail -n 1 "$out")"
}

# client_bg NAME SUBCOMMAND ARGS...: a client in the background, in its own process group
# (killed by lab_teardown); BG_PID is its pid, its output goes to $LAB_LOG/client.NAME.
client_bg() {
    local name=$1
    shift
    setsid "$LAB_PYTHON" "$LAB_CLIENT" "$SERVER_PORT" "$@" >"$LAB_LOG/client.$name" 2>&1 </dev/null 3>&- &
    BG_PID=$!
    echo "$BG_PID" >>"$LAB_LOG/pgids"
}

# client_bg_wait NAME PID: wait for that background client; its failure is the test's failure.
client_bg_wait() {
    local test_client=$1
    wait "$2" && return 0
    assert_server_alive "$(eval_gettext 'during '\''$test_client'\''')" || return
    fail "$(tail -n 1 "$LAB_LOG/client.$1")"
}

# hold_clients N [--no-verify]: N idle connections in the background; returns once all are open.
hold_clients() {
    local n=$1 client_error
    shift
    rm -f "$LAB_LOG/hold.ready"
    client_bg hold hold "$n" --ready "$LAB_LOG/hold.ready" "$@"
    HOLD_PID=$BG_PID
    wait_until 60 test -s "$LAB_LOG/hold.ready" || {
        client_error=$(tail -n 1 "$LAB_LOG/client.hold") || true
        fail "$(eval_gettext 'could not open $n connections within 60 s: $client_error')"
    }
}

# hold_idle N: N idle connections, each checked to echo first where the model serves them all.
hold_idle() {
    if lab_serves_all; then hold_clients "$1"; else hold_clients "$1" --no-verify; fi
}

release_clients() {
    kill -TERM "$HOLD_PID" 2>/dev/null
    wait "$HOLD_PID" 2>/dev/null || true
}

# cpu_below PERCENT SECONDS: the submission's processes use under PERCENT of one core over the
# next SECONDS; sets CPU_PCT to what they used.
cpu_below() {
    CPU_PCT=$(proc cpu "$SERVER_SCOPE" "$2")
    awk -v used="$CPU_PCT" -v max="$1" 'BEGIN { exit !(used < max) }'
}

# The lab's compiler flags, shared with the Makefile (one place: harness/lib/cflags).
lab_cflags() { cat "$LAB_ROOT/harness/lib/cflags"; }

# lab_compile CC OUT FLAGS...: compile LAB_SRC in the submission's sandbox and jail (the compiler
# reads what the submission names: #include "/etc/shadow" must fail), to OUT, owned by the harness
# once built; the compiler's output in $LAB_LOG/compile.log. Refuses a binary that overrides the
# sanitizers' options (lib/sandbox.bash, forged_options).
lab_compile() {
    local cc=$1 out=$2 forged built src=$LAB_SRC dest
    shift 2
    mkdir -p "$LAB_JAIL_DIR/out"
    [[ -z ${LAB_JAIL_UID:-} ]] || chown "$LAB_JAIL_UID" "$LAB_JAIL_DIR/out"
    built="$LAB_JAIL_DIR/out/a.out"
    rm -f "$built"
    inner_argv "$LAB_LOG/compile.args" --src --out "$LAB_JAIL_DIR/out"
    dest=$built
    if ((${#INNER_ARGV[@]})); then
        jail_argv "$INNER_HOME" --build
        src=/lab/server.c dest=/lab/out/a.out
    else
        jail_argv "$LAB_JAIL_DIR" --build
    fi
    # Bounded in time and memory, as harness/run's own build is.
    # shellcheck disable=SC2046 # the flags are words
    timeout -k 5 "$BUILD_SECONDS" "${INNER_ARGV[@]}" "${JAIL_ARGV[@]}" "$cc" $(lab_cflags) "$@" \
        -o "$dest" "$src" \
        >"$LAB_LOG/compile.log" 2>&1 </dev/null 8<"$LAB_LOG/compile.args" 7<"$LAB_SRC"
    local rc=$?
    if ((rc == 124 || rc == 137)); then
        # "error: " stays as it is: the checks find the line by it (grep error).
        echo "error: $(eval_gettext 'the build took more than $BUILD_SECONDS s')" >>"$LAB_LOG/compile.log"
        return 1
    fi
    ((rc == 0)) || return 1
    mkdir -p "$(dirname "$out")"
    install -m 755 "$built" "$out" && rm -f "$built" || return 1
    forged=$(forged_options "$out")
    if [[ -n $forged ]]; then
        echo "error: $(eval_gettext 'the submission defines $forged, which would override the sanitizers'\'' options the harness sets')" >>"$LAB_LOG/compile.log"
        return 1
    fi
}

# build_variant NAME CC FLAGS...: compile LAB_SRC into $LAB_LOG/bin/server-NAME (a directory the
# submission's uid can reach and not write), the server that server_start starts from then on.
build_variant() {
    local variant=$1 cc=$2 first_error
    shift 2
    LAB_SERVER="$LAB_LOG/bin/server-$variant"
    lab_compile "$cc" "$LAB_SERVER" "$@" || {
        first_error=$(grep -m1 -E 'error' "$LAB_LOG/compile.log") || true
        fail "$(eval_gettext 'the $variant build failed: $first_error')"
    }
}

# The workload of the memory checks: a bit of everything a client can do, then the caller stops
# the server. Sizes are small: valgrind runs it 20 to 50 times slower.
lab_workload() {
    client short
    client binary
    client halfclose
    client pipeline
    if lab_serves_all; then client parallel 20 --rounds 2; fi
    client resets 5
    client churn 50
    client sigpipe 5
}

# stop_after_workload SECONDS: SIGTERM, then the server must exit 0 within SECONDS.
stop_after_workload() {
    local seconds=$1
    server_stop TERM "$seconds" || fail "$(eval_gettext 'still running $seconds s after SIGTERM')"
    ((SERVER_STATUS == 0)) || fail "$(eval_gettext 'exit status $SERVER_STATUS after SIGTERM, expected 0')"
}

# log_ledger [--before-stop]: what the "+"/"-" log lines say, judged as the contract states it
# and whatever order concurrent lines reached stderr in (a pool or a threaded server that logs
# outside its lock writes them out of order). Per log tag ("" or "[w1] "): every connection logged
# "+" is logged "-" (the same ADDR:PORT), and the counts are those of one counter that rose and
# fell by one and came back to 0: for every value v >= 1, as many "+" lines say "(v active)" as
# "-" lines say "(v-1 active)". Prints one sentence per thing that is off (nothing when all is
# right). --before-stop: only the lines before "shutting down".
log_ledger() {
    awk -v before_stop="$([[ ${1:-} == --before-stop ]] && echo 1)" '
        before_stop && /^shutting down$/ { exit }
        match($0, /^(\[[^]]*\] )?[+-] [^ ]+ \([0-9]+ active\)$/) {
            tag = ""; line = $0
            if (substr(line, 1, 1) == "[") { tag = substr(line, 1, index(line, "] ") + 1); line = substr(line, length(tag) + 1) }
            split(line, f, " "); sign = f[1]; addr = f[2]; n = substr(f[3], 2) + 0
            tags[tag] = 1
            if (sign == "+") { plus[tag, n]++; open[tag, addr]++; if (n > top[tag]) top[tag] = n }
            else { minus[tag, n]++; open[tag, addr]--; if (n + 1 > top[tag]) top[tag] = n + 1 }
            if (!((tag, addr) in seen)) { seen[tag, addr] = 1; order[++k] = tag SUBSEP addr }
        }
        END {
            for (i = 1; i <= k; i++) if (open[order[i]] > 0) { unclosed++; if (!first) first = order[i] }
            if (unclosed) { split(first, p, SUBSEP); printf "%d connection(s) logged \"+\" but never \"-\" (the first: %s%s)\n", unclosed, p[1], p[2] }
            for (t in tags) for (v = 1; v <= top[t]; v++) if (plus[t, v] + 0 != minus[t, v - 1] + 0) {
                printf "the counts do not add up%s: %d \"+\" line(s) say (%d active) but %d \"-\" line(s) say (%d active)\n", (t == "" ? "" : " for " substr(t, 1, length(t) - 1)), plus[t, v], v, minus[t, v - 1], v - 1
                break
            }
        }' "$SERVER_ERR"
}
ledger_right() { [[ -z $(log_ledger "$@") ]]; }

# vg_verdicts LOG: the processes of a valgrind log (lines headed ==PID==) that are not clean, one
# "PID errors" (its last error summary is not "0 errors") or "PID unsummarised" (no summary: it was
# killed before valgrind could write one) a line, the first process of the log (the server itself)
# marked "first"; nothing when every process is clean.
vg_verdicts() {
    awk 'match($0, /^==[0-9]+==/) {
             pid = substr($0, 3, RLENGTH - 4); if (!(pid in seen)) { seen[pid] = 1; order[++n] = pid }
             if ($0 ~ /ERROR SUMMARY: /) summary[pid] = ($0 ~ /ERROR SUMMARY: 0 errors/) ? "ok" : "errors"
         }
         END { for (i = 1; i <= n; i++) if (summary[order[i]] != "ok")
                   print order[i], (summary[order[i]] == "errors" ? "errors" : "unsummarised"), (i == 1 ? "first" : "") }' "$1"
}

# tool_opts: the chapter options of the checks that run the server under a tool (valgrind, the
# sanitizers): 08 with 2 workers, whatever the machine's CPU count (its default), so that a slowed
# master and its workers stop within the tool's deadline on any machine.
declare -gA TOOL_OPTS=([08]="-w 2")
# shellcheck disable=SC2086 # the options are words
tool_opts() { [[ -z ${TOOL_OPTS[$LAB_CHAPTER]:-} ]] || printf '%s\n' ${TOOL_OPTS[$LAB_CHAPTER]}; }

# files_matching GLOB...: the files that exist, one per line (nothing, and success, if none).
files_matching() {
    local g
    for g in "$@"; do compgen -G "$g" || true; done
}
