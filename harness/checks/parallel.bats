#!/usr/bin/env bats
# parallel: a crowd of clients at once, each with its own payloads, every byte checked.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    server_start -q
}

teardown() { lab_cleanup; }

@test "many clients at once each get their own bytes back" {
    local n
    n=$(chapter_parallel)
    ulimit -n 20000 2>/dev/null || true
    client parallel "$n" --rounds 3
    server_alive || lab_fail "the server died after $n parallel clients ($(server_death))"
}
