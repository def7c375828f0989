#!/usr/bin/env bats
# points: 10
# chapters: all
# slow: no
# claim: SIGTERM with 10 clients connected: exit 0 within 2 s, every connection closed and logged before "shutting down", no process left, port free
# hint: a stop flag alone does not wake a thread blocked in accept() or recv(); children and threads must be ended and waited for
# hint-01: the stop must also end the session of the client being served: a recv() blocked on an idle client is woken only if the handler shuts that socket down (or the loop poll()s it with the stop's descriptor), and the serving loop must test the stop too
# hint-02: on SIGTERM send SIGTERM to every child, reap them (SIGKILL one still there after a deadline), log each '-' as it is reaped, then 'shutting down'
# hint-03: shutdown() every client socket so each thread's recv() returns, wait for every thread, then 'shutting down'
# hint-04: wake every worker blocked on the queue (pthread_cond_broadcast(), not pthread_cond_signal(), which wakes one) and every one in recv() (shutdown() their sockets), join every thread, close what is still queued, then 'shutting down'
# hint-05: close (and log '-' for) every connection, then print 'shutting down' and exit 0
# hint-06: close (and log '-' for) every connection, then print 'shutting down' and exit 0
# hint-07: close (and log '-' for) every connection, then print 'shutting down' and exit 0
# hint-08: forward SIGTERM to every worker and wait for them (SIGKILL one still there after a deadline); each worker closes and logs its connections
# rule: stop-2s
# rule: stop-closes-all
# rule: children-reaped

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() { load ../lib/check && lab_setup; }
teardown() { lab_teardown; }

port_free() {
    "$LAB_PYTHON" - "$SERVER_PORT" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)
PY
}

stops_cleanly() {
    local sig=$1 left pids
    server_stop "$sig" 2 || {
        left=$(proc pids "$SERVER_SCOPE" | wc -l)
        fail "$(eval_gettext 'still running 2 s after SIG$sig ($left process(es) of the submission left)')"
    }
    ((SERVER_STATUS == 0)) || fail "$(eval_gettext 'exit status $SERVER_STATUS after SIG$sig, expected 0')"
    grep -q 'shutting down' "$SERVER_ERR" || fail "$(eval_gettext 'no '\''shutting down'\'' line on stderr after SIG$sig')"
    # No grace period: a server waits for its children and workers before it exits, so none may
    # be left the moment it is gone (one that is still stopping was not waited for).
    group_gone || {
        pids=$(proc pids "$SERVER_SCOPE" | tr '\n' ' ')
        fail "$(eval_gettext 'processes of the server still running when it exited (it must end its children and workers and wait for them first): $pids')"
    }
    port_free || fail "$(eval_gettext 'port $SERVER_PORT still accepts connections after the server exited')"
}

@test "SIGTERM with 10 clients connected: exit 0 within 2 s, nothing left, every connection closed" {
    server_start  # not -q: each connection's "+" and "-" lines say which ones were closed
    hold_idle 10
    stops_cleanly TERM
    measured "$(eval_gettext 'stopped in $SERVER_STOP_MS ms')"
    # Exiting closes the sockets too, but the contract asks the server to close and log each one
    # itself, after ending its threads or children: that is where a forgotten client shows.
    # The server's last words are its own: a "+" or "-" after "shutting down" comes from a worker
    # or child that was still running when its parent stopped waiting (or never waited).
    ! sed -n '/^shutting down$/,$p' "$SERVER_ERR" | grep -q ' active)$' ||
        fail "$(gettext 'connections were logged after '\''shutting down'\'': the contract asks for every connection to be closed and logged first')"
    # Each connection logged "+" is logged "-" before "shutting down" (by its address: the order
    # in which concurrent lines reached stderr is not judged).
    local off
    off=$(log_ledger --before-stop | grep 'never "-"' || true)
    [[ -z $off ]] || fail "$(eval_gettext 'before '\''shutting down'\'', $off: the contract asks the server to close and log every connection before it exits')"
}

@test "SIGINT on an idle server: exit 0 within 2 s" {
    server_start -q
    stops_cleanly INT
}

@test "SIGTERM with a child stuck (stopped): it is killed after a deadline and waited for" {
    only_for 02 -- "$(gettext '02 serves each client in a child (08'\''s workers have this test in supervise)')"
    server_start -q
    hold_idle 2
    local child
    child=$(proc children "$SERVER_PID" | head -n 1)
    [[ -n $child ]] || fail "$(gettext 'no child process serves the 2 connected clients')"
    # TRANSLATORS: the stopped process, in "with one child stopped" (stop_with_stuck, lib/check.bash)
    stop_with_stuck "$child" "$(gettext 'child')"
}
