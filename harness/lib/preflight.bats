#!/usr/bin/env bats
# chapters: all
# slow: no
# harness/run's pre-flight, before any check: does the server start, and does it echo at all?
# Not a check (no points): a server that never prints its ready line is a set-up error, reported
# in one sentence; one that echoes nothing (a starter, a loop that never reads) is told so at once,
# and the checks that need an echo fail with that reason instead of each waiting out its own time
# limits. The same server_start as every check (lib/check.bash), in the same sandboxes.

setup_file() { load check && lab_setup_file; }
setup() { load check && lab_setup; }
teardown() { lab_teardown; }

# One server, started as every check starts it: a failure to start is server_start's sentence; a
# server that started but echoes nothing fails with the probe's ("the server echoes nothing: ...");
# one that quit right after its ready line (a refused connection) is told how it died, not that a
# connection was refused.
# The probe exits 3 when the server echoes nothing: harness/run reads the no-echo file this leaves,
# not the sentence, which is in the student's language.
@test "preflight" {
    local rc=0
    server_start -q
    "$LAB_PYTHON" "$LAB_CLIENT" "$SERVER_PORT" probe --seconds 5 >"$LAB_LOG/client.probe" 2>&1 || rc=$?
    if ((rc != 0)); then
        assert_server_alive "$(gettext 'after its ready line, before it echoed anything')"
        ((rc != 3)) || : >"$LAB_LOG/no-echo"
        fail "$(tail -n 1 "$LAB_LOG/client.probe")"
    fi
}
