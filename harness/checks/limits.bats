#!/usr/bin/env bats
# limits: many concurrent connections, each echoed. 05 must refuse what select() cannot hold
# (descriptors >= FD_SETSIZE) without crashing; 06 holds 5,000; 07 and 08 hold 10,000 (C10K);
# with --scale, 08 holds 40,000 over 4 workers.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    LOADGEN="$LAB_ROOT/harness/loadgen/loadgen"
    [[ -x $LOADGEN ]] || { lab_fail "no load generator at harness/loadgen/loadgen (make loadgen)"; return 1; }
    ulimit -n 20000
}

teardown() { lab_cleanup; }

# loadgen_start N [LOADGEN OPTIONS...]: in the background, N connections held 2 s, each echoed
# at the start and at the end; loadgen_wait then sets the report's numbers as LG_<name>.
loadgen_start() {
    local n=$1
    shift
    LG_JSON="$LAB_LOG/loadgen.$SERVER_N.json"
    timeout -k 5 300 "$LOADGEN" --port "$SERVER_PORT" -c "$n" --hold --duration 2 --size 32 \
        --timeout 30 --json "$@" >"$LG_JSON" 2>"$LAB_LOG/loadgen.$SERVER_N.err" &
    LG_PID=$!
}

loadgen_wait() {
    local vars
    wait "$LG_PID" || true
    if ! vars=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k, v in d.items():
    if isinstance(v, (int, float)):
        print(f"LG_{k}={int(v)}")' "$LG_JSON" 2>/dev/null); then
        lab_fail "the load generator produced no report: $(tail -n 1 "$LAB_LOG/loadgen.$SERVER_N.err")"
        return 1
    fi
    eval "$vars"
}

loadgen_hold() { loadgen_start "$@" && loadgen_wait; }

# shellcheck disable=SC2154 # LG_* come from loadgen_wait
expect_all_echoed() {  # expect_all_echoed N WHAT
    server_alive || { lab_fail "the server died holding $2 ($(server_death))"; return 1; }
    if ((LG_echoed != $1 || LG_mismatches != 0 || LG_timeouts != 0 || LG_errors != 0 || LG_closed_early != 0)); then
        lab_fail "$2: $LG_echoed of $1 connections echoed, $LG_closed_early closed early, $LG_refused refused, $LG_timeouts timed out, $LG_errors errors, $LG_mismatches wrong echoes"
        return 1
    fi
}

@test "holds many concurrent connections, each echoed" {
    case $LAB_CHAPTER in
        05)
            server_start prlimit --nofile=4096:4096 -- -q
            loadgen_hold 1100 --allow-refused
            server_alive || { lab_fail "the server died with 1,100 connections ($(server_death)): FD_SET past FD_SETSIZE?"; return 1; }
            if ((LG_echoed > 1024)); then
                lab_fail "$LG_echoed connections were served: select() cannot watch descriptors >= FD_SETSIZE (1024), the surplus must be refused"
                return 1
            fi
            if ((LG_echoed < 1000 || LG_echoed + LG_refused != 1100 || LG_mismatches != 0)); then
                lab_fail "of 1,100 connections $LG_echoed were served and $LG_refused refused ($LG_timeouts timed out, $LG_errors errors, $LG_mismatches wrong echoes); expected about 1,020 served and the rest refused"
                return 1
            fi
            client short
            ;;
        06)
            server_start prlimit --nofile=20000:20000 -- -q
            loadgen_hold 5000
            expect_all_echoed 5000 "5,000 connections"
            ;;
        07 | 08)
            server_start prlimit --nofile=20000:20000 -- -q
            loadgen_hold 10000
            expect_all_echoed 10000 "10,000 connections"
            ;;
    esac
}

@test "07: 10,000 concurrent connections in edge-triggered mode (-e)" {
    [[ $LAB_CHAPTER == 07 ]] || skip "edge-triggered mode is 07's"
    server_start prlimit --nofile=20000:20000 -- -q -e
    loadgen_hold 10000
    expect_all_echoed 10000 "10,000 connections with -e"
}

# shellcheck disable=SC2154
@test "08 --scale: 40,000 concurrent connections over 4 workers" {
    [[ $LAB_CHAPTER == 08 && $LAB_SCALE == 1 ]] || skip "only with --scale, for 08"
    local peak=0 rss t0
    server_start prlimit --nofile=20000:20000 -- -q -w 4
    t0=$(now_ms)
    loadgen_start 40000 --procs 3 --src-range 4
    while kill -0 "$LG_PID" 2>/dev/null; do
        rss=$(proc rss "$SERVER_PID" 2>/dev/null || echo 0)
        ((rss > peak)) && peak=$rss
        sleep 0.5
    done
    loadgen_wait
    measured "40,000 connections opened, echoed, held 2 s and echoed again in $(($(now_ms) - t0)) ms"
    measured "peak resident memory of the server tree (master and 4 workers, sampled every 0.5 s): $((peak / 1024)) MiB"
    expect_all_echoed 40000 "40,000 connections over 4 workers"
}
