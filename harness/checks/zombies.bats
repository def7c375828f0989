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

@test "08: a worker that dies is reaped" {
    [[ $LAB_CHAPTER == 08 ]] || skip "08's workers only"
    local victim
    victim=$(proc children "$SERVER_PID" | head -n 1)
    [[ -n $victim ]] || { lab_fail "the master has no worker process"; return 1; }
    kill -KILL "$victim"
    sleep 1
    wait_until 2 no_zombies || lab_fail "worker $victim, killed, is still a zombie 3 s later: the master does not reap"
}
