#!/usr/bin/env bats
# points: 10
# chapters: 04
# slow: no
# claim: the pool does not grow with the load (as many threads under 200 clients as idle, at most N+3), serves N clients at once while the others wait, no busy waiting
# hint: create the N workers once, N from -w (not a constant); workers must sleep on a condition variable or a semaphore, not loop on the queue, and unlock the queue before they serve the client they took
# rule: pool-fixed
# rule: pool-n-at-once
# rule: idle-no-cpu

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() { load ../lib/check && lab_setup; }
teardown() { lab_teardown; }

# What is judged is what the contract asks of a pool, seen from outside: its thread count does not
# follow the load, and N clients are served at once (their echo comes back) while the others wait.
# Not one shape of it: a pool may have a thread of its own for the signals, or count a queued
# connection in its log's "+" lines; the check reads neither the log nor an exact count.
EXTRA=3  # threads beside the N workers: the acceptor, and room for a signal thread or a reaper

@test "the thread count does not grow under 200 clients, and stays within N + $EXTRA" {
    local workers=4 idle peak crowd
    server_start -q -w "$workers"
    idle=$(proc threads "$SERVER_SCOPE")
    ((idle <= workers + EXTRA)) || fail "$(eval_gettext 'with -w $workers and no client the server runs $idle threads: the contract allows the $workers workers and at most $EXTRA more (the acceptor, a signal thread, ...)')"
    client_bg crowd parallel 200 --rounds 2
    crowd=$BG_PID
    peak=$(proc peak threads "$SERVER_SCOPE" --while "$crowd")
    client_bg_wait crowd "$crowd"
    ((peak <= idle)) || fail "$(eval_gettext 'with -w $workers the server ran $idle threads with no client and up to $peak under 200 clients: the pool must not grow with the load')"
}

@test "12 long sessions with -w 4: 4 are served at once, the 8 others wait, the pool does not grow" {
    local idle threads served client_error
    server_start -q -w 4
    idle=$(proc threads "$SERVER_SCOPE")
    rm -f "$LAB_LOG/served"
    client_bg served served 12 --ready "$LAB_LOG/served" --wait 2
    wait_until 30 test -s "$LAB_LOG/served" || {
        client_error=$(tail -n 1 "$LAB_LOG/client.served") || true
        fail "$(eval_gettext 'the 12 clients could not even connect: $client_error')"
    }
    threads=$(proc threads "$SERVER_SCOPE")
    served=$(cut -d' ' -f1 "$LAB_LOG/served")
    kill -TERM "$BG_PID" 2>/dev/null
    ((served == 4)) || fail "$(eval_gettext 'with -w 4, 12 clients connected and each sent a line: $served got their echo within 2 s, expected 4 (the pool serves -w clients at once; the others wait their turn)')"
    ((threads <= idle)) || fail "$(eval_gettext 'with -w 4 the server ran $idle threads with no client and $threads with 12 connected: the pool must not grow with the load')"
}

@test "no busy waiting: idle workers, and busy workers with a full queue, cost under 2% CPU" {
    server_start -q -w 2
    sleep 0.3
    cpu_below 2 2 ||
        fail "$(eval_gettext '$CPU_PCT% CPU over 2 s with no client: the workers must sleep until there is work, not poll')"
    hold_clients 40 --no-verify # 2 served, the queue full, the rest in the kernel's backlog
    sleep 0.5
    cpu_below 2 2 ||
        fail "$(eval_gettext '$CPU_PCT% CPU over 2 s while every worker was busy and clients waited: someone polls instead of sleeping')"
}
