#!/usr/bin/env bats
# points: 10
# chapters: 05 06 07 08
# slow: yes
# claim: many concurrent connections (05: 1,100 with the surplus refused cleanly; 06: 5,000; 07-08: 10,000), each echoed
# hint: 05: never FD_SET a descriptor >= FD_SETSIZE; 06: grow the pollfd array; 07-08: keep per-connection memory small and raise no fixed cap
# rule: capacity
# rule: select-fdsetsize
# rule: backlog

setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    LOADGEN=$LAB_LOADGEN
    [[ -x $LOADGEN ]] || fail "no load generator at $LOADGEN (make loadgen)"
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
    wait "$LG_PID" || true
    LG_ECHOED=""
    read -r LG_ECHOED LG_REFUSED LG_TIMEOUTS LG_ERRORS LG_MISMATCHES LG_CLOSED LG_DONE < <("$LAB_PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
ends = [d[k] for k in ("refused", "timeouts", "errors", "mismatches", "closed_early")]
print(d["echoed"], *ends, d["connections"] - sum(ends))' \
        "$LG_JSON" 2>/dev/null)
    [[ -n $LG_ECHOED ]] || fail "the load generator produced no report: $(tail -n 1 "$LAB_LOG/loadgen.$SERVER_N.err")"
}

# hold_all N WHAT [SERVER OPTIONS...]: a server with 20,000 descriptors holds N connections, each echoed.
hold_all() {
    local n=$1 what=$2
    shift 2
    server_start prlimit --nofile=20000:20000 -- -q "$@"
    loadgen_start "$n"
    loadgen_wait
    assert_server_alive "holding $what"
    all_echoed "$n" "$what"
}

# all_echoed N WHAT: the load generator's report says each of the N connections was echoed, right.
all_echoed() {
    ((LG_ECHOED == $1 && LG_MISMATCHES == 0 && LG_TIMEOUTS == 0 && LG_ERRORS == 0 && LG_CLOSED == 0)) ||
        fail "$2: of $1 connections, $LG_DONE were served to the end, $LG_REFUSED refused, $LG_TIMEOUTS timed out, $LG_CLOSED closed early, $LG_ERRORS ended on an error and $LG_MISMATCHES got wrong bytes ($LG_ECHOED were echoed at least once)"
}

@test "holds many concurrent connections, each echoed" {
    not_for 05 -- "select() holds what FD_SETSIZE allows: the next test"
    hold_all "${HOLD[$LAB_CHAPTER]}" "${HOLD[$LAB_CHAPTER]} connections"
}

@test "05: of 1,100 connections, those past FD_SETSIZE are refused, the others served" {
    only_for 05 -- "only select() has the FD_SETSIZE wall"
    server_start prlimit --nofile=4096:4096 -- -q
    loadgen_start 1100 --allow-refused
    loadgen_wait
    assert_server_alive "with 1,100 connections: FD_SET past FD_SETSIZE?"
    ((LG_ECHOED <= 1024)) ||
        fail "$LG_ECHOED connections were served: select() cannot watch descriptors >= FD_SETSIZE (1024), the surplus must be refused"
    ((LG_ECHOED >= 1000 && LG_ECHOED + LG_REFUSED == 1100 && LG_MISMATCHES == 0)) ||
        fail "of 1,100 connections, $LG_DONE were served to the end, $LG_REFUSED refused, $LG_TIMEOUTS timed out, $LG_CLOSED closed early, $LG_ERRORS ended on an error and $LG_MISMATCHES got wrong bytes ($LG_ECHOED were echoed at least once); expected about 1,020 served and the rest refused"
    client short
}

@test "07: 10,000 concurrent connections in edge-triggered mode (-e)" {
    only_for 07 -- "edge-triggered mode (-e) is 07's"
    hold_all 10000 "10,000 connections with -e" -e
}

@test "08 --scale: 40,000 concurrent connections over 4 workers" {
    only_for 08 -- "only 08 spreads connections over workers"
    [[ ${LAB_SCALE:-0} == 1 ]] || skip "only with --scale (LAB_SCALE=1)"
    local peak t0
    server_start prlimit --nofile=20000:20000 -- -q -w 4
    t0=$(now_ms)
    loadgen_start 40000 --procs 3 --src-range 4
    peak=$(proc peak rss "$SERVER_SCOPE" --while "$LG_PID")
    loadgen_wait
    measured "40,000 connections opened, echoed, held 2 s and echoed again in $(($(now_ms) - t0)) ms"
    measured "peak resident memory of the server tree (master and 4 workers, sampled every 0.05 s): $((peak / 1024)) MiB"
    all_echoed 40000 "40,000 connections over 4 workers"
}
