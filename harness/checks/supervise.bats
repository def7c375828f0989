#!/usr/bin/env bats
# supervise (08): the master runs N workers, restarts one that dies, ends them all on SIGTERM;
# connections spread over the workers; no worker outlives its master.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
}

teardown() { lab_cleanup; }

workers() { proc children "$SERVER_PID" | while read -r p; do [[ $(ps -o stat= -p "$p") == Z* ]] || echo "$p"; done; }
nworkers() { workers | wc -l; }
has_workers() { [[ $(nworkers) -eq $1 ]]; }

@test "runs N workers, and 1,000 connections reach at least two of them, each echoed" {
    local lg="$LAB_ROOT/harness/loadgen/loadgen" tags
    server_start -w 3
    wait_until 2 has_workers 3 || { lab_fail "with -w 3, $(nworkers) worker processes after 2 s"; return 1; }
    if ! timeout -k 5 120 "$lg" --port "$SERVER_PORT" -c 1000 --hold --duration 1 --size 32 --timeout 10 \
        >"$LAB_LOG/loadgen.txt" 2>&1; then
        lab_fail "not every one of 1,000 connections was echoed: $(grep -m1 -iE 'timeout|refused|mismatch' "$LAB_LOG/loadgen.txt")"
        return 1
    fi
    tags=$(sed -nE 's/^\[([^]]+)\] \+ .*/\1/p' "$SERVER_ERR" | sort | uniq -c | tr -s ' ' | tr '\n' ',')
    [[ $(sed -nE 's/^\[([^]]+)\] \+ .*/\1/p' "$SERVER_ERR" | sort -u | wc -l) -ge 2 ]] ||
        lab_fail "all 1,000 connections went to one worker (log tags: ${tags:-none}): each worker needs its own SO_REUSEPORT socket"
}

@test "a worker killed with SIGKILL is replaced within 1 s, and service goes on" {
    local victim
    server_start -q -w 2
    wait_until 2 has_workers 2 || { lab_fail "with -w 2, $(nworkers) worker processes after 2 s"; return 1; }
    victim=$(workers | head -n 1)
    kill -KILL "$victim"
    sleep 0.2
    if ! wait_until 1 eval "has_workers 2 && ! workers | grep -qx $victim"; then
        lab_fail "1.2 s after worker $victim was killed, $(nworkers) worker(s) run: the master must reap it and start another"
        return 1
    fi
    [[ $(proc zombies "$SERVER_PID") -eq 0 ]] || { lab_fail "the killed worker was left a zombie"; return 1; }
    client parallel 50 --rounds 2
}

@test "SIGTERM to the master ends every process, exit 0 within 2 s" {
    server_start -q -w 3
    wait_until 2 has_workers 3 || { lab_fail "with -w 3, $(nworkers) worker processes after 2 s"; return 1; }
    hold_clients 20
    server_stop TERM 2 || { lab_fail "still running 2 s after SIGTERM"; return 1; }
    [[ $SERVER_STATUS -eq 0 ]] || { lab_fail "exit status $SERVER_STATUS after SIGTERM"; return 1; }
    wait_until 2 group_gone ||
        lab_fail "workers still running after the master exited: $(proc pids "$SERVER_PID" | tr '\n' ' ')"
}

@test "workers exit when the master is killed" {
    server_start -q -w 2
    wait_until 2 has_workers 2 || { lab_fail "with -w 2, $(nworkers) worker processes after 2 s"; return 1; }
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    wait_until 3 group_gone ||
        lab_fail "3 s after the master was killed, workers still run: $(proc pids "$SERVER_PID" | tr '\n' ' ') (use prctl(PR_SET_PDEATHSIG) or watch getppid())"
}
