#!/usr/bin/env bats
# shutdown: SIGTERM/SIGINT stop the server cleanly and promptly, clients connected or not.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
}

teardown() { lab_cleanup; }

port_free() {
    python3 - "$SERVER_PORT" <<'PY'
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
    if ! server_stop "$sig" 2; then
        lab_fail "still running 2 s after SIG$sig ($(proc pids "$SERVER_PID" | wc -l) process(es) in its group)"
        return 1
    fi
    [[ $SERVER_STATUS -eq 0 ]] || { lab_fail "exit status $SERVER_STATUS after SIG$sig, expected 0"; return 1; }
    grep -q 'shutting down' "$SERVER_ERR" || { lab_fail "no 'shutting down' line on stderr after SIG$sig"; return 1; }
    if ! wait_until 2 group_gone; then
        lab_fail "processes of the server still running after it exited: $(proc pids "$SERVER_PID" | tr '\n' ' ')"
        return 1
    fi
    port_free || { lab_fail "port $SERVER_PORT still accepts connections after the server exited"; return 1; }
}

@test "SIGTERM with 10 clients connected: exit 0 within 2 s, nothing left" {
    server_start -q
    if chapter_serves_all; then hold_clients 10; else hold_clients 10 --no-verify; fi
    stops_cleanly TERM
    echo "stopped in $SERVER_STOP_MS ms"
}

@test "SIGINT on an idle server: exit 0 within 2 s" {
    server_start -q
    stops_cleanly INT
}
