#!/usr/bin/env bats
# points: 10
# chapters: all
# slow: no
# claim: SIGTERM with 10 clients connected: exit 0 within 2 s, "shutting down" logged, no process left, port free
# hint: a stop flag alone does not wake a thread blocked in accept() or recv(); children and threads must be ended and waited for

setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    server_start -q
}
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
    local sig=$1
    server_stop "$sig" 2 ||
        fail "still running 2 s after SIG$sig ($(proc pids "$SERVER_PID" | wc -l) process(es) in its group)"
    ((SERVER_STATUS == 0)) || fail "exit status $SERVER_STATUS after SIG$sig, expected 0"
    grep -q 'shutting down' "$SERVER_ERR" || fail "no 'shutting down' line on stderr after SIG$sig"
    wait_until 2 group_gone ||
        fail "processes of the server still running after it exited: $(proc pids "$SERVER_PID" | tr '\n' ' ')"
    port_free || fail "port $SERVER_PORT still accepts connections after the server exited"
}

@test "SIGTERM with 10 clients connected: exit 0 within 2 s, nothing left" {
    hold_idle 10
    stops_cleanly TERM
    measured "stopped in $SERVER_STOP_MS ms"
}

@test "SIGINT on an idle server: exit 0 within 2 s" {
    stops_cleanly INT
}
