#!/usr/bin/env bats
# fd-leak: after clients leave, the server holds as many descriptors as before they came.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    server_start -q
}

teardown() { lab_cleanup; }

fds_back_to() { [[ $(group_fds) -le $1 ]]; }

@test "descriptors return to their count once clients leave" {
    local before after n=50
    [[ $LAB_CHAPTER == 01 ]] && n=1
    client short   # lazily opened descriptors (if any) are opened now
    sleep 0.2
    before=$(group_fds)
    client parallel "$n" --rounds 2
    client resets 10
    client churn 200
    client halfclose
    if ! wait_until 5 fds_back_to "$before"; then
        after=$(group_fds)
        lab_fail "the server held $before descriptors before the clients came and $after five seconds after they all left: $((after - before)) leaked"
    fi
}
