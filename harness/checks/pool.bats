#!/usr/bin/env bats
# points: 10
# chapters: 04
# slow: no
# claim: thread count stays N+1 under 200 clients, at most N sessions at once, no busy waiting
# hint: create the N workers once; workers must sleep in pthread_cond_wait, not loop on the queue

setup_file() { load ../lib/check && lab_setup_file; }
setup() { load ../lib/check && lab_setup; }
teardown() { lab_teardown; }

max_active() {
    sed -nE 's/^[+-] [^ ]+ \(([0-9]+) active\)$/\1/p' "$SERVER_ERR" | sort -n | tail -n 1
}

@test "thread count stays N+1 under 200 clients, and at most N are served at once" {
    local n=4 idle peak crowd active
    server_start -w "$n"
    idle=$(proc threads "$SERVER_PID")
    ((idle == n + 1)) || fail "with -w $n and no client the server runs $idle threads, expected $((n + 1)) (the acceptor and $n workers)"
    client_bg crowd parallel 200 --rounds 2
    crowd=$BG_PID
    peak=$(proc peak threads "$SERVER_PID" --while "$crowd")
    client_bg_wait crowd "$crowd"
    ((peak <= n + 1)) || fail "with -w $n the server ran up to $peak threads under 200 clients: the pool must not grow"
    active=$(max_active)
    ((active <= n)) || fail "the log shows $active clients served at once with -w $n"
}

@test "12 long sessions with -w 4: still 5 threads, 4 clients served, 8 waiting" {
    local threads active
    server_start -w 4
    hold_clients 12 --no-verify
    sleep 1
    threads=$(proc threads "$SERVER_PID")
    ((threads == 5)) || fail "with -w 4 and 12 clients connected the server runs $threads threads, expected 5: the pool must not grow"
    active=$(max_active)
    ((${active:-0} == 4)) || fail "with -w 4 and 12 clients connected the log shows ${active:-no} clients served at once, expected 4"
    release_clients
}

@test "no busy waiting: idle workers, and busy workers with a full queue, cost under 2% CPU" {
    server_start -q -w 2
    sleep 0.3
    cpu_below 2 2 ||
        fail "$CPU_PCT% CPU over 2 s with no client (the workers wait for work): someone polls instead of sleeping on a condition variable"
    hold_clients 40 --no-verify # 2 served, the queue full, the rest in the kernel's backlog
    sleep 0.5
    cpu_below 2 2 ||
        fail "$CPU_PCT% CPU over 2 s while every worker was busy and clients waited: someone polls instead of sleeping on a condition variable"
    release_clients
}
