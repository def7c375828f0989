#!/usr/bin/env bats
# echo: every byte comes back, in order, binary-safe, whatever the size; half-close works.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    server_start -q
}

teardown() { lab_cleanup; }

@test "a short line comes back" {
    client short
}

@test "64 KiB of random bytes with NULs come back intact" {
    client binary
}

@test "4 MiB streamed while reading come back intact" {
    client stream
}

@test "1,000 pipelined messages come back in order" {
    client pipeline
}

@test "a half-close with output still queued: everything comes back, then EOF" {
    client halfclose
}

@test "a half-close that arrives with the data: everything comes back, then EOF" {
    client halfclose-corked
}
