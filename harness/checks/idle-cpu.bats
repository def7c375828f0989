#!/usr/bin/env bats
# idle-cpu: a server with nothing to do uses no CPU, connections or not.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    server_start -q
}

teardown() { lab_cleanup; }

@test "100 idle connections cost under 2% CPU over 2 s" {
    local c0 c1 used
    if chapter_serves_all; then hold_clients 100; else hold_clients 100 --no-verify; fi
    sleep 0.5
    c0=$(proc cpu "$SERVER_PID")
    sleep 2
    c1=$(proc cpu "$SERVER_PID")
    used=$(python3 -c "print(round(($c1 - $c0) / 2 * 100, 1))")
    release_clients
    if python3 -c "import sys; sys.exit(0 if $c1 - $c0 < 0.04 else 1)"; then
        return 0
    fi
    lab_fail "the server used ${used}% CPU over 2 s with 100 idle connections: something polls or spins"
}
