#!/usr/bin/env bats
# points: 10
# chapters: 05 06 07 08
# slow: yes
# claim: many concurrent connections (05: 1,100 with the surplus refused cleanly; 06: 5,000; 07-08: 10,000), each echoed
# hint: 05: never FD_SET a descriptor >= FD_SETSIZE; 06: grow the pollfd array; 07-08: keep per-connection memory small and raise no fixed cap
# rule: capacity
# rule: select-fdsetsize
# rule: backlog

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    LOADGEN=$LAB_LOADGEN
    [[ -x $LOADGEN ]] || fail "$(eval_gettext 'no load generator at $LOADGEN (make loadgen)')"
    ulimit -n 20000
}
teardown() { lab_teardown; }

# Connections each model holds at once, each echoed (05 is select's: see its own test).
declare -gA HOLD=([06]=5000 [07]=10000 [08]=10000)

# loadgen_start N [LOADGEN OPTIONS...]: in the background, N connections held 2 s, each echoed
# at the start and at the end; loadgen_wait then sets LG_ECHOED (echoed at least once), and how
# each connection ended, which add up to N: LG_DONE (served to the end), LG_REFUSED, LG_TIMEOUTS,
# LG_ERRORS, LG_MISMATCHES and LG_CLOSED (closed early), from its report. A server that has echoed
# no connection at all after 10 s serves nobody (a correct one echoes its first within
# milliseconds): the run stops there (--give-up) rather than wait out every connection's 30 s.
loadgen_start() {
    local n=$1
    shift
    LG_JSON="$LAB_LOG/loadgen.$SERVER_N.json"
    timeout -k 5 300 "$LOADGEN" --port "$SERVER_PORT" -c "$n" --hold --duration 2 --size 32 \
        --timeout 30 --give-up 10 --json "$@" >"$LG_JSON" 2>"$LAB_LOG/loadgen.$SERVER_N.err" 3>&- &
    LG_PID=$!
}

loadgen_wait() {
    local loadgen_error
    wait "$LG_PID" || true
    LG_ECHOED=""
    read -r LG_ECHOED LG_REFUSED LG_TIMEOUTS LG_ERRORS LG_MISMATCHES LG_CLOSED LG_DONE < <("$LAB_PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
ends = [d[k] for k in ("refused", "timeouts", "errors", "mismatches", "closed_early")]
print(d["echoed"], *ends, d["connections"] - sum(ends))' \
        "$LG_JSON" 2>/dev/null)
    [[ -n $LG_ECHOED ]] || {
        loadgen_error=$(tail -n 1 "$LAB_LOG/loadgen.$SERVER_N.err") || true
        fail "$(eval_gettext 'the load generator produced no report: $loadgen_error')"
    }
}

# hold_all N WHAT [SERVER OPTIONS...]: a server with 20,000 descriptors holds N connections, each echoed.
# WHAT ("10,000 connections with -e") is the student's, translated by the caller; so is all_echoed's.
hold_all() {
    local n=$1 what=$2
    shift 2
    server_start prlimit --nofile=20000:20000 -- -q "$@"
    loadgen_start "$n"
    loadgen_wait
    assert_server_alive "$(eval_gettext 'holding $what')"
    all_echoed "$n" "$what"
}

# all_echoed N WHAT: the load generator's report says each of the N connections was echoed, right.
all_echoed() {
    local total=$1 what=$2
    ((LG_ECHOED == total && LG_MISMATCHES == 0 && LG_TIMEOUTS == 0 && LG_ERRORS == 0 && LG_CLOSED == 0)) ||
        fail "$(eval_gettext '$what: of $total connections, $LG_DONE were served to the end, $LG_REFUSED refused, $LG_TIMEOUTS timed out, $LG_CLOSED closed early, $LG_ERRORS ended on an error and $LG_MISMATCHES got wrong bytes ($LG_ECHOED were echoed at least once)')"
}

@test "holds many concurrent connections, each echoed" {
    not_for 05 -- "$(gettext 'select() holds what FD_SETSIZE allows: the next test')"
    local count=${HOLD[$LAB_CHAPTER]}
    hold_all "$count" "$(eval_gettext '$count connections')"
}

@test "05: of 1,100 connections, those past FD_SETSIZE are refused, the others served" {
    only_for 05 -- "$(gettext 'only select() has the FD_SETSIZE wall')"
    server_start prlimit --nofile=4096:4096 -- -q
    loadgen_start 1100 --allow-refused
    loadgen_wait
    assert_server_alive "$(gettext 'with 1,100 connections: FD_SET past FD_SETSIZE?')"
    ((LG_ECHOED <= 1024)) ||
        fail "$(eval_gettext '$LG_ECHOED connections were served: select() cannot watch descriptors >= FD_SETSIZE (1024), the surplus must be refused')"
    ((LG_ECHOED >= 1000 && LG_ECHOED + LG_REFUSED == 1100 && LG_MISMATCHES == 0)) ||
        fail "$(eval_gettext 'of 1,100 connections, $LG_DONE were served to the end, $LG_REFUSED refused, $LG_TIMEOUTS timed out, $LG_CLOSED closed early, $LG_ERRORS ended on an error and $LG_MISMATCHES got wrong bytes ($LG_ECHOED were echoed at least once); expected about 1,020 served and the rest refused')"
    client short
}

@test "07: 10,000 concurrent connections in edge-triggered mode (-e)" {
    only_for 07 -- "$(gettext 'edge-triggered mode (-e) is 07'\''s')"
    hold_all 10000 "$(gettext '10,000 connections with -e')" -e
}

@test "08 --scale: 40,000 concurrent connections over 4 workers" {
    only_for 08 -- "$(gettext 'only 08 spreads connections over workers')"
    [[ ${LAB_SCALE:-0} == 1 ]] || skip "$(gettext 'only with --scale (LAB_SCALE=1)')"
    local peak t0 elapsed_ms peak_mib
    server_start prlimit --nofile=20000:20000 -- -q -w 4
    t0=$(now_ms)
    loadgen_start 40000 --procs 3 --src-range 4
    peak=$(proc peak rss "$SERVER_SCOPE" --while "$LG_PID")
    loadgen_wait
    elapsed_ms=$(($(now_ms) - t0))
    measured "$(eval_gettext '40,000 connections opened, echoed, held 2 s and echoed again in $elapsed_ms ms')"
    peak_mib=$((peak / 1024))
    measured "$(eval_gettext 'peak resident memory of the server tree (master and 4 workers, sampled every 0.05 s): $peak_mib MiB')"
    all_echoed 40000 "$(gettext '40,000 connections over 4 workers')"
}
