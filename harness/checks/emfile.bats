#!/usr/bin/env bats
# emfile: out of descriptors (ulimit -n 64, 100 clients), the server neither crashes nor spins,
# and serves again once the clients leave.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
}

teardown() { lab_cleanup; }

@test "under ulimit -n 64, 100 clients: no crash, no spinning, serves again after" {
    local c0 c1
    server_start prlimit --nofile=64:64 -- -q
    hold_clients 100 --no-verify
    sleep 1
    c0=$(proc cpu "$SERVER_PID")
    sleep 2
    c1=$(proc cpu "$SERVER_PID")
    server_alive || { lab_fail "the server died with 100 clients and 64 descriptors ($(server_death))"; return 1; }
    if ! python3 -c "import sys; sys.exit(0 if $c1 - $c0 < 0.2 else 1)"; then
        lab_fail "the server used $(python3 -c "print(round(($c1 - $c0) / 2 * 100))")% CPU for 2 s while out of descriptors: the accept loop spins on EMFILE"
        return 1
    fi
    release_clients
    sleep 1
    client short
    if chapter_serves_all; then client parallel 20 --rounds 2; fi
    server_alive || lab_fail "the server died after the clients left ($(server_death))"
}
