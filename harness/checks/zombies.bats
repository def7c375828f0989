#!/usr/bin/env bats
# zombies: every child that ends is reaped.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    server_start -q
}

teardown() { lab_cleanup; }

no_zombies() { [[ $(proc zombies "$SERVER_PID") -eq 0 ]]; }

@test "no zombie child remains after 200 clients leave" {
    client parallel 200 --rounds 1
    client churn 100
    sleep 1
    if ! wait_until 3 no_zombies; then
        lab_fail "$(proc zombies "$SERVER_PID") zombie children 4 s after 300 clients left"
    fi
}
