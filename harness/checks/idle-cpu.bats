#!/usr/bin/env bats
# points: 5
# chapters: all
# slow: no
# claim: 100 idle connections cost under 2% CPU over 2 s
# hint: a loop that polls (a timeout of 0, a sleep-and-retry, a condition variable checked in a loop without waiting) burns CPU while nothing happens

setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    server_start -q
}
teardown() { lab_teardown; }

@test "100 idle connections cost under 2% CPU over 2 s" {
    hold_idle 100
    sleep 0.5
    cpu_below 2 2 || fail "the server used $CPU_PCT% CPU over 2 s with 100 idle connections: something polls or spins"
    release_clients
}
