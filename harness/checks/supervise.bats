#!/usr/bin/env bats
# points: 15
# chapters: 08
# slow: no
# claim: N workers run; connections reach several workers; a killed worker is replaced within 1 s; SIGTERM ends every process, a stuck worker by SIGKILL, before the master exits
# hint: the master starts -w N workers (SO_REUSEPORT set before bind() on each one's socket), reaps and restarts dead ones, and on SIGTERM forwards it, waits with a deadline, then SIGKILLs and waits; after fork() a worker resets the signal mask and handlers it inherited, and exits when its master vanishes
# rule: workers-supervised
# rule: workers-die-with-master

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() { load ../lib/check && lab_setup; }
teardown() { lab_teardown; }

workers() { proc children "$SERVER_PID"; }
nworkers() { workers | wc -l; }
has_workers() { (($(nworkers) == $1)); }
# The worker VICTIM is gone and another took its place.
replaced() { has_workers 2 && ! workers | grep -qx "$VICTIM"; }

# start_workers N [OPTIONS...]: the master with -w N, and its N workers running within 2 s.
start_workers() {
    local wanted=$1 running
    shift
    server_start -w "$wanted" "$@"
    wait_until 2 has_workers "$wanted" || {
        running=$(nworkers)
        fail "$(eval_gettext 'with -w $wanted, $running worker processes after 2 s')"
    }
}

@test "runs N workers, and 1,000 connections reach at least two of them, each echoed" {
    local tags loadgen_error tag_counts
    start_workers 3
    timeout -k 5 120 "$LAB_LOADGEN" --port "$SERVER_PORT" -c 1000 --hold --duration 1 \
        --size 32 --timeout 10 >"$LAB_LOG/loadgen.txt" 2>&1 || {
        loadgen_error=$(grep -m1 -iE 'timeout|refused|mismatch' "$LAB_LOG/loadgen.txt") || true
        fail "$(eval_gettext 'not every one of 1,000 connections was echoed: $loadgen_error')"
    }
    tags=$(sed -nE 's/^\[([^]]+)\] \+ .*/\1/p' "$SERVER_ERR" | sort | uniq -c)
    (($(wc -l <<<"$tags") >= 2)) || {
        tag_counts=$(tr -s ' \n' ' ,' <<<"${tags:-none}")
        fail "$(eval_gettext 'all 1,000 connections went to one worker (log tags: $tag_counts): each worker needs its own SO_REUSEPORT socket')"
    }
}

@test "a worker killed with SIGKILL is replaced within 1 s, and service goes on" {
    local running
    start_workers 2 -q
    VICTIM=$(workers | head -n 1)
    kill -KILL "$VICTIM"
    sleep 0.2
    wait_until 1 replaced || {
        running=$(nworkers)
        fail "$(eval_gettext '1.2 s after worker $VICTIM was killed, $running worker(s) run: the master must reap it and start another')"
    }
    (($(proc zombies "$SERVER_SCOPE") == 0)) || fail "$(gettext 'the killed worker was left a zombie')"
    client parallel 50 --rounds 2
}

@test "SIGTERM to the master ends every process, exit 0 within 2 s" {
    local pids
    start_workers 3 -q
    hold_clients 20
    server_stop TERM 2 || fail "$(gettext 'still running 2 s after SIGTERM')"
    ((SERVER_STATUS == 0)) || fail "$(eval_gettext 'exit status $SERVER_STATUS after SIGTERM')"
    wait_until 2 group_gone || {
        pids=$(proc pids "$SERVER_SCOPE" | tr '\n' ' ')
        fail "$(eval_gettext 'workers still running after the master exited: $pids')"
    }
}

@test "SIGTERM with a worker stuck (stopped): the master kills it after a deadline and waits for it" {
    start_workers 2 -q
    VICTIM=$(workers | head -n 1)
    # TRANSLATORS: the stopped process, in "with one worker stopped" (stop_with_stuck, lib/check.bash)
    stop_with_stuck "$VICTIM" "$(gettext 'worker')"
}

@test "workers exit when the master is killed" {
    local pids
    start_workers 2 -q
    kill -KILL "$SERVER_PID"
    wait "$SERVER_JOB" 2>/dev/null || true
    wait_until 3 group_gone || {
        pids=$(proc pids "$SERVER_SCOPE" | tr '\n' ' ')
        fail "$(eval_gettext '3 s after the master was killed, workers still run: $pids (a worker can learn it from prctl(PR_SET_PDEATHSIG), from getppid(), or from EOF on a pipe only the master holds open)')"
    }
}
