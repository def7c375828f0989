# shellcheck shell=bash
# Helpers shared by the checks (harness/checks/*.bats), loaded in each file's setup().
#
# harness/run sets, for every check:
#   LAB_ROOT         the lab's top directory
#   LAB_CHAPTER      two digits, e.g. 05;  LAB_CHAPTER_DIR  e.g. 05-select
#   LAB_SERVER       the server binary under test
#   LAB_SRC          its server.c, or empty when grading a binary alone (--bin)
#   LAB_LOG          a directory for this check's logs (kept only if the check fails)
#   LAB_QUICK        1 with --quick
#
# A check fails with a sentence for the student: lab_fail "what was observed".
# The sentence goes to $LAB_LOG/failures, which harness/run prints under the check.

LAB_CLIENT="$LAB_ROOT/harness/clients/echo_client.py"
LAB_PROC="$LAB_ROOT/harness/lib/proctool.py"
LAB_START_TIMEOUT=${LAB_START_TIMEOUT:-10}  # seconds to print the ready line
SERVER_K=0 SERVER_N=0

# lab_fail MESSAGE: record why the current test failed, and fail it.
lab_fail() {
    printf '%s: %s\n' "$BATS_TEST_DESCRIPTION" "$*" >>"$LAB_LOG/failures"
    return 1
}

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

# wait_until SECONDS COMMAND...: poll COMMAND every 50 ms until it succeeds; 1 if it never does.
wait_until() {
    local limit_ms=$(($(now_ms) + ${1%.*} * 1000)) 
    shift
    until "$@"; do
        (($(now_ms) >= limit_ms)) && return 1
        sleep 0.05
    done
}

# server_start [WRAPPER... --] [SERVER OPTIONS...]
# Starts the server on 127.0.0.1, port 0, in its own process group (setsid), with stdout and
# stderr in files (a pipe nobody drains would block the server in printf), fd 3 closed (bats
# would wait for it). Waits for the ready line and sets SERVER_PID (= its process group),
# SERVER_PORT, SERVER_OUT and SERVER_ERR. A wrapper (valgrind ...) goes before "--".
server_start() {
    local wrap=() line
    if [[ " $* " == *" -- "* ]]; then
        while [[ $1 != -- ]]; do wrap+=("$1"); shift; done
        shift
    fi
    # Files named after the test and the server's rank in it: every bats test runs in a fresh
    # process, so a plain counter would name the previous test's files, and the grep below could
    # read the previous server's ready line (and port) before the new server's redirection
    # truncates the file. Created empty here, before the server starts, for the same reason.
    SERVER_K=$((SERVER_K + 1))
    SERVER_N="${BATS_TEST_NUMBER:-0}-$SERVER_K"
    SERVER_OUT="$LAB_LOG/server$SERVER_N.out"
    SERVER_ERR="$LAB_LOG/server$SERVER_N.err"
    : >"$SERVER_OUT"
    : >"$SERVER_ERR"
    printf '%s\n' "${wrap[*]} $LAB_SERVER -p 0 -b 127.0.0.1 $*" >"$LAB_LOG/server$SERVER_N.cmd"
    setsid "${wrap[@]}" "$LAB_SERVER" -p 0 -b 127.0.0.1 "$@" \
        >"$SERVER_OUT" 2>"$SERVER_ERR" </dev/null 3>&- &
    SERVER_PID=$!
    echo "$SERVER_PID" >>"$LAB_LOG/pgids"
    local limit_ms=$(($(now_ms) + LAB_START_TIMEOUT * 1000))
    while :; do
        line=$(grep -m1 -E '^listening on .*:[0-9]+$' "$SERVER_OUT" || true)
        [[ -n $line ]] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID"
            lab_fail "the server exited (status $?) before printing its ready line; its stderr ends with: $(tail -n 2 "$SERVER_ERR" | tr '\n' ' ')"
            return 1
        fi
        if (($(now_ms) >= limit_ms)); then
            lab_fail "the server printed no 'listening on ADDR:PORT' line within ${LAB_START_TIMEOUT} s"
            return 1
        fi
        sleep 0.05
    done
    SERVER_PORT=${line##*:}
}

server_alive() { kill -0 "$SERVER_PID" 2>/dev/null; }
# No live process left in the server's process group.
group_gone() { [[ -z $(proc pids "$SERVER_PID") ]]; }
# Exited: gone, or a zombie waiting for this shell to collect its status.  A process whose
# main thread returned while other threads still run also shows Z; it has not exited until
# /proc/PID/task holds the main thread alone (else `wait` below could block unbounded).
server_exited() {
    server_alive || return 0
    [[ $(ps -o stat= -p "$SERVER_PID") == Z* ]] || return 1
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
    wait "$SERVER_PID"
    SERVER_STATUS=$?
    SERVER_STOP_MS=$(($(now_ms) - t0))
}

# measured TEXT: a figure the run prints under the check's result (for --scale and the like).
measured() { printf '%s\n' "$*" >>"$LAB_LOG/measured"; }

# client SUBCOMMAND ARGS...: run the Python test client against the server; on failure its
# one-line explanation becomes the check's failure message.
client() {
    local out
    out="$LAB_LOG/client.$1.$SERVER_N"
    if timeout -k 5 "${CLIENT_TIMEOUT:-120}" python3 "$LAB_CLIENT" "$SERVER_PORT" "$@" >"$out" 2>&1; then
        return 0
    fi
    local rc=$?
    if ((rc == 124)); then
        lab_fail "the test client '$1' did not finish within ${CLIENT_TIMEOUT:-120} s"
    elif ! server_alive; then
        lab_fail "the server died during '$1' ($(server_death))"
    else
        lab_fail "$(tail -n 1 "$out")"
    fi
}

# Background clients: client_bg NAME SUBCOMMAND ARGS... (its own process group, recorded for cleanup)
client_bg() {
    local name=$1
    shift
    setsid python3 "$LAB_CLIENT" "$SERVER_PORT" "$@" >"$LAB_LOG/client.$name" 2>&1 </dev/null 3>&- &
    echo $! >>"$LAB_LOG/pgids"
    printf -v "CLIENT_${name//-/_}" '%s' $!
}

# hold N idle connections in the background; returns when they are all open.
hold_clients() {
    local n=$1
    shift
    rm -f "$LAB_LOG/hold.ready"
    client_bg hold hold "$n" --ready "$LAB_LOG/hold.ready" "$@"
    if ! wait_until 60 test -s "$LAB_LOG/hold.ready"; then
        lab_fail "could not open $n connections within 60 s: $(tail -n 1 "$LAB_LOG/client.hold")"
        return 1
    fi
}

release_clients() {
    kill -TERM "${CLIENT_hold:?}" 2>/dev/null
    wait "$CLIENT_hold" 2>/dev/null || true
}

# How the server died, from the status bash saw and its last stderr lines.
server_death() {
    local st
    wait "$SERVER_PID" 2>/dev/null
    st=$?
    if ((st > 128)); then
        printf 'killed by signal %s' "$(kill -l $((st - 128)) 2>/dev/null || echo $((st - 128)))"
    else
        printf 'exit status %d' "$st"
    fi
}

# Observations through /proc (see proctool.py).
proc() { python3 "$LAB_PROC" "$@"; }
group_fds() {
    local pid total=0
    for pid in $(proc pids "$SERVER_PID"); do
        total=$((total + $(proc fds "$pid" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# The lab's compiler flags, shared with the Makefile (one place: harness/lib/cflags).
lab_cflags() { cat "$LAB_ROOT/harness/lib/cflags"; }

# build_variant NAME CC FLAGS...: compile LAB_SRC into $LAB_BUILD/server-NAME (once per run).
build_variant() {
    local name=$1 cc=$2 out
    shift 2
    out="$LAB_BUILD/server-$name"
    if [[ ! -x $out ]]; then
        # shellcheck disable=SC2046
        if ! "$cc" $(lab_cflags) "$@" -o "$out" "$LAB_SRC" >"$LAB_LOG/build-$name.log" 2>&1; then
            lab_fail "the $name build failed: $(grep -m1 -E 'error' "$LAB_LOG/build-$name.log")"
            return 1
        fi
    fi
    echo "$out"
}

# Kill whatever a test started, whatever happened (bats calls this from teardown).
lab_cleanup() {
    local pg
    [[ -f $LAB_LOG/pgids ]] || return 0
    while read -r pg; do
        kill -KILL -- "-$pg" 2>/dev/null || true
    done <"$LAB_LOG/pgids"
    : >"$LAB_LOG/pgids"
}

# The parameters that depend on the chapter.
chapter_parallel() {
    case $LAB_CHAPTER in
        02) echo 100 ;; 03 | 04 | 05) echo 500 ;; *) echo 1000 ;;
    esac
}
chapter_serves_all() { [[ $LAB_CHAPTER != 01 && $LAB_CHAPTER != 04 ]]; }

# The workload of the memory checks: a bit of everything a client can do, then the caller stops
# the server. Sizes are small: valgrind runs it 20 to 50 times slower.
lab_workload() {
    client short && client binary && client halfclose && client pipeline || return 1
    if chapter_serves_all; then client parallel 20 --rounds 2 || return 1; fi
    client resets 5 && client churn 50 && client sigpipe 5
}

# stop_after_workload SECONDS: SIGTERM, then the server must exit 0 within SECONDS.
stop_after_workload() {
    if ! server_stop TERM "$1"; then
        lab_fail "still running $1 s after SIGTERM"
        return 1
    fi
    [[ $SERVER_STATUS -eq 0 ]] || { lab_fail "exit status $SERVER_STATUS after SIGTERM, expected 0"; return 1; }
}

# The active count of the last "+"/"-" log line of each log tag ("" or "[w1] "...), one per line.
last_active_counts() {
    sed -nE 's/^(\[[^]]*\] )?[+-] [^ ]+ \(([0-9]+) active\)$/\1|\2/p' "$SERVER_ERR" |
        awk -F'|' '{ last[$1] = $2 } END { for (t in last) print last[t] }'
}
all_counts_zero() { ! last_active_counts | grep -qv '^0$'; }

# files_matching GLOB...: the files that exist, one per line (nothing, and success, if none).
files_matching() {
    local g
    for g in "$@"; do compgen -G "$g" || true; done
}
