#!/usr/bin/env bats
# points: 15
# chapters: all
# slow: no
# claim: every byte comes back in order: short line, 64 KiB binary with NULs, 4 MiB streamed, 1,000 pipelined messages, three kinds of half-close (07 and 08 in both epoll modes)
# hint: a lost or reordered byte usually means a short write not completed (write_all), a buffer treated as a C string (strlen/printf on binary data), or pending output dropped when the client half-closes
# hint-01: recv() with no flag returns what has arrived (MSG_WAITALL would wait for a full buffer): send back exactly those n bytes, looping until all are sent (write_all); binary data is not a C string (no strlen, no printf %s); recv() returning 0 is the end: close the connection (a half-closed client waits for that close)
# hint-02: the child serves the client's socket: the parent closes its own copy after fork(), never before (the child would inherit a closed descriptor)
# hint-03: each thread reads and writes its own client's socket with its own buffer, and closes it when recv() returns 0; the thread owns that descriptor: main must not close it after pthread_create() (threads share one descriptor table, unlike 02's children)
# hint-05: select()'s first argument is the highest descriptor + 1 (the listener's included); keep what send() could not send (EAGAIN) and send it when select() says the socket is writable; on EOF, flush the pending output before closing
# hint-06: keep what send() could not send (EAGAIN) and send it on POLLOUT; on EOF (or POLLHUP), flush the pending output before closing
# hint-07: keep what send() could not send (EAGAIN) and send it on EPOLLOUT; with -e read until EAGAIN (data and FIN can share one edge) and write until EAGAIN or done (a send that leaves room raises no new edge); flush before closing
# hint-08: keep what send() could not send (EAGAIN) and send it on EPOLLOUT; with -e read until EAGAIN (data and FIN can share one edge) and write until EAGAIN or done (a send that leaves room raises no new edge); flush before closing
# rule: ready-line
# rule: echo
# rule: half-close

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

@test "07, 08 edge-triggered (-e): a half-close with the data, pipelined messages, 40 half-closes with output pending" {
    only_for 07 08 -- "$(gettext 'edge-triggered mode (-e) is 07'\''s and 08'\''s')"
    # -e reports data and a FIN that arrive together as one edge: a loop that stops at the short
    # read without looking at EPOLLRDHUP never sees the FIN, and the client waits for EOF forever.
    server_stop TERM 5
    server_start -q -e
    client halfclose-corked
    client pipeline
    client halfclose-many 40
}
