#!/usr/bin/env bats
# robustness: what clients do to a server on a bad day does not kill or stall it.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    server_start -q
}

teardown() { lab_cleanup; }

@test "peers that reset mid-stream end only their own connection" {
    client resets 20
    server_alive || lab_fail "the server died ($(server_death))"
}

@test "1,000 connect-then-close do not hurt the server" {
    client churn 1000
    server_alive || lab_fail "the server died ($(server_death))"
}

@test "writing to a vanished peer (SIGPIPE) does not kill the server" {
    client sigpipe 20
    server_alive || lab_fail "the server died ($(server_death)): SIGPIPE is not ignored"
}
