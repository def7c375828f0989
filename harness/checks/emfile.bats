#!/usr/bin/env bats
# points: 10
# chapters: all
# slow: no
# claim: under ulimit -n 64 with 100 clients: no crash, no spinning, serves again once clients leave
# hint: accept() failing with EMFILE leaves the client queued: without a spare descriptor (or a pause) the loop spins at 100% CPU

setup_file() { load ../lib/check && lab_setup_file; }
setup() { load ../lib/check && lab_setup; }
teardown() { lab_teardown; }

@test "under ulimit -n 64, 100 clients: no crash, no spinning, serves again after" {
    server_start prlimit --nofile=64:64 -- -q
    hold_clients 100 --no-verify
    sleep 1
    cpu_below 10 2 ||
        fail "the server used $CPU_PCT% CPU for 2 s while out of descriptors: the accept loop spins on EMFILE"
    assert_server_alive "with 100 clients and 64 descriptors"
    release_clients
    sleep 1
    client short
    if lab_serves_all; then client parallel 20 --rounds 2; fi
    assert_server_alive "after the clients left"
}
