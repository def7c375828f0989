#!/usr/bin/env bats
# points: 0
# chapters: 07 08
# slow: no
# claim: (Gradescope's leaderboard, make gradescope LEADERBOARD=1; no points) echoed messages per second: 100 connections in ping-pong for 3 s, every echo verified
# hint: the leaderboard counts only a server that echoes every message right: pass the echo and parallel checks first
#
# Made an extra check of the autograder by make gradescope LEADERBOARD=1 (harness/gradescope/make-zip
# --leaderboard). Its figure, a "leaderboard:" measured line, becomes results.json's leaderboard
# (harness/lib/report.py). A short run in the check's sandbox, the server in its own: a race for a
# class that wants one, not a benchmark (make bench measures the models properly).

setup_file() { load "$LAB_ROOT_DIR/harness/lib/check" && lab_setup_file; }
setup() { load "$LAB_ROOT_DIR/harness/lib/check" && lab_setup; }
teardown() { lab_teardown; }

@test "100 connections in ping-pong for 3 s, every message echoed right" {
    local out rate
    server_start -q
    if ! out=$(timeout -k 5 60 "$LAB_LOADGEN" --port "$SERVER_PORT" -c 100 --duration 3 --size 64 --timeout 10 --json 2>/dev/null); then
        fail "not every message of 100 connections in ping-pong came back right: $("$LAB_PYTHON" -c 'import json, sys
try:
    d = json.loads(sys.stdin.read())
except ValueError:
    sys.exit(print("the load generator said nothing"))
print(", ".join(f"{d[k]} {what}" for k, what in (("mismatches", "altered"), ("timeouts", "timed out"),
      ("errors", "failed"), ("closed_early", "closed early"), ("refused", "refused")) if d.get(k)))' <<<"$out")"
    fi
    rate=$("$LAB_PYTHON" -c 'import json, sys; print(round(json.loads(sys.stdin.read())["msgs_per_s"]))' <<<"$out")
    measured "leaderboard: messages per second = $rate"
}
