#!/usr/bin/env bats
# pool (04): a fixed pool of N worker threads — N+1 threads whatever the load, at most N clients
# served at once, and nobody spinning while they wait.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
}

teardown() { lab_cleanup; }

max_active() {
    sed -nE 's/^[+-] [^ ]+ \(([0-9]+) active\)$/\1/p' "$SERVER_ERR" | sort -n | tail -n 1
}

@test "thread count stays N+1 under 200 clients, and at most N are served at once" {
    local n=4 t peak=0 idle
    server_start -w "$n"
    idle=$(proc threads "$SERVER_PID")
    ((idle == n + 1)) || { lab_fail "with -w $n and no client the server runs $idle threads, expected $((n + 1)) (the acceptor and $n workers)"; return 1; }
    client_bg crowd parallel 200 --rounds 2
    while kill -0 "$CLIENT_crowd" 2>/dev/null; do
        t=$(proc threads "$SERVER_PID" 2>/dev/null || echo 0)
        ((t > peak)) && peak=$t
        sleep 0.05
    done
    wait "$CLIENT_crowd" || { lab_fail "200 clients of a pool of $n: $(tail -n 1 "$LAB_LOG/client.crowd")"; return 1; }
    ((peak <= n + 1)) || { lab_fail "with -w $n the server ran up to $peak threads under 200 clients: the pool must not grow"; return 1; }
    t=$(max_active)
    ((t <= n)) || lab_fail "the log shows $t clients served at once with -w $n"
}

@test "12 long sessions with -w 4: still 5 threads, 4 clients served, 8 waiting" {
    local t
    server_start -w 4
    hold_clients 12 --no-verify
    sleep 1
    t=$(proc threads "$SERVER_PID")
    ((t == 5)) || { lab_fail "with -w 4 and 12 clients connected the server runs $t threads, expected 5: the pool must not grow"; return 1; }
    t=$(max_active)
    [[ ${t:-0} -eq 4 ]] || lab_fail "with -w 4 and 12 clients connected the log shows ${t:-no} clients served at once, expected 4"
    release_clients
}

# cpu_over_2s WHAT: fail if the server used 2% CPU or more in the next 2 s.
cpu_over_2s() {
    local c0 c1
    c0=$(proc cpu "$SERVER_PID")
    sleep 2
    c1=$(proc cpu "$SERVER_PID")
    python3 -c "import sys; sys.exit(0 if $c1 - $c0 < 0.04 else 1)" ||
        lab_fail "$(python3 -c "print(round(($c1 - $c0) / 2 * 100, 1))")% CPU over 2 s $1: someone polls instead of sleeping on a condition variable"
}

@test "no busy waiting: idle workers, and busy workers with a full queue, cost under 2% CPU" {
    local n=2
    server_start -q -w "$n"
    sleep 0.3
    cpu_over_2s "with no client (the workers wait for work)"
    hold_clients 40 --no-verify  # 2 served, the queue full, the rest in the kernel's backlog
    sleep 0.5
    cpu_over_2s "while every worker was busy and clients waited"
    release_clients
}
