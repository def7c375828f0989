#!/usr/bin/env bats
# points: 5
# chapters: all
# slow: no
# claim: 100 idle connections cost under 2% CPU over 2 s, and so does a server idle again after output backed up and drained, a half-close and a reset, then once its last client left (over 1 s each)
# hint: a loop that polls (a timeout of 0, a sleep-and-retry, write interest left on once the output is flushed, a closed connection still watched) burns CPU while nothing happens
# hint-04: idle workers must sleep on a condition variable or a semaphore until a connection is queued, never loop on the queue
# hint-05: clear a connection's bit in the write set once its output is flushed (select() reports an empty socket writable at every turn), and never pass a zero timeout
# hint-06: remove POLLOUT from a pollfd's events once its output is flushed, give poll() a timeout of -1, and test revents with & (POLLIN comes with POLLHUP or POLLERR after a reset): a connection reported and never handled is reported at every turn
# hint-07: ask for EPOLLOUT only while output is pending (EPOLL_CTL_MOD it away once flushed); in level-triggered mode a readable socket you stopped reading wakes epoll_wait() for ever
# hint-08: ask for EPOLLOUT only while output is pending (EPOLL_CTL_MOD it away once flushed); in level-triggered mode a readable socket you stopped reading wakes epoll_wait() for ever
# rule: idle-no-cpu

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    server_start -q
}
teardown() { lab_teardown; }

@test "100 idle connections cost under 2% CPU over 2 s" {
    hold_idle 100
    sleep 0.5
    cpu_below 2 2 || fail "$(eval_gettext 'the server used $CPU_PCT% CPU over 2 s with 100 idle connections: something polls or spins')"
    release_clients
}

# Idle connections that never had output pending do not show a loop that keeps watching for
# writability once the output is gone: a client whose output backed up, then drained, does.
@test "idle again after work (output backed up then drained, a half-close, a reset), then with nobody left: under 2% CPU" {
    local client_error
    rm -f "$LAB_LOG/drained.ready"
    client_bg drained drained --ready "$LAB_LOG/drained.ready"
    wait_until 90 test -s "$LAB_LOG/drained.ready" || {
        client_error=$(tail -n 1 "$LAB_LOG/client.drained") || true
        fail "$(eval_gettext 'the work before the idle time did not complete: $client_error')"
    }
    sleep 0.2
    # One second is enough here: a loop left watching an empty socket spins at 100%.
    cpu_below 2 1 || fail "$(eval_gettext 'the server used $CPU_PCT% CPU over 1 s once idle again, with one client connected whose output had backed up and then drained (after a half-close and a reset): something is still watched or polled though there is nothing to do')"
    # And once that client has left too, nobody connected: a closed connection still watched (its
    # descriptor left in the set or the array: POLLNVAL at every turn) spins only now.
    kill -TERM "$BG_PID" 2>/dev/null
    wait "$BG_PID" 2>/dev/null || true
    sleep 0.3
    cpu_below 2 1 || fail "$(eval_gettext 'the server used $CPU_PCT% CPU over 1 s after its last client left, with nobody connected: a closed connection is still watched (its descriptor left in the set or the array), or something polls')"
}
