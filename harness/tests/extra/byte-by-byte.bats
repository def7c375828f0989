#!/usr/bin/env bats
# points: 5
# chapters: all
# slow: no
# claim: (an instructor's check, an example for --extra-checks) bytes sent one at a time, 0.2 s apart, each echoed before the next is sent
# hint: echo what arrives as it arrives, without waiting for a whole line or a full buffer
#
# An extra check lives outside the lab's tree and loads the lab's helpers from LAB_ROOT_DIR, which
# harness/run sets: ./harness/run 05 --extra-checks harness/tests/extra

setup_file() { load "$LAB_ROOT_DIR/harness/lib/check" && lab_setup_file; }
setup() { load "$LAB_ROOT_DIR/harness/lib/check" && lab_setup; }
teardown() { lab_teardown; }

@test "five bytes sent one at a time, each echoed before the next" {
    server_start -q
    run "$LAB_PYTHON" - "$SERVER_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
for b in b"hello":
    s.sendall(bytes([b]))
    try:
        got = s.recv(16)
    except socket.timeout:
        sys.exit(f"the byte {bytes([b])!r} was not echoed within 2 s")
    if got != bytes([b]):
        sys.exit(f"sent {bytes([b])!r}, got back {got!r}")
    time.sleep(0.2)
PY
    ((status == 0)) || fail "$output"
}
