#!/usr/bin/env bats
# concurrency: what happens to a second client while a first one is connected.
# 01 serves one client at a time (the second waits its turn: the lesson of the chapter);
# 04 serves N at a time (client N+1 waits); every other model answers at once.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
}

teardown() { lab_cleanup; }

@test "a second client is answered (or waits its turn) as the model says" {
    case $LAB_CHAPTER in
        01) server_start -q && client concurrency serial --busy 1 ;;
        04) server_start -q -w 4 && client concurrency serial --busy 4 ;;
        *) server_start -q && client concurrency parallel --busy 1 ;;
    esac
}

@test "a client is answered while five others are connected and idle" {
    [[ $LAB_CHAPTER != 01 ]] || skip "01 serves one client at a time by design"
    if [[ $LAB_CHAPTER == 04 ]]; then server_start -q -w 8; else server_start -q; fi
    client concurrency parallel --busy 5
}
