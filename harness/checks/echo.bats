#!/usr/bin/env bats
# points: 15
# chapters: all
# slow: no
# claim: every byte comes back in order: short line, 64 KiB binary with NULs, 4 MiB streamed, 1,000 pipelined messages, three kinds of half-close
# hint: a lost or reordered byte usually means a short write not completed (write_all), a buffer treated as a C string (strlen/printf on binary data), or pending output dropped when the client half-closes

setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    server_start -q
}
teardown() { lab_teardown; }

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

@test "40 half-closes read while output is still pending in the server's buffers: everything comes back" {
    client halfclose-many 40
}
