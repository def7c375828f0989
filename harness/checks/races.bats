#!/usr/bin/env bats
# points: 10
# chapters: 03 04 08
# slow: yes
# claim: a ThreadSanitizer build (helgrind with --bin) reports no data race under parallel load, and the logged active counts add up (back to 0)
# hint: shared variables (the active counter, the connection list, the queue) must be read and written under the same mutex
# rule: no-race
# rule: log-lines

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    # shellcheck disable=SC2034 # read by server_start and client (check.bash)
    LAB_START_TIMEOUT=60 CLIENT_TIMEOUT=300
}
teardown() { lab_teardown; }

@test "no data race under 200 parallel clients, and the logged active counts add up" {
    local n=200 reports opts what ledger_error report_files
    mapfile -t opts < <(tool_opts)
    if [[ -n $LAB_SRC ]]; then
        build_variant tsan gcc -O1 -fsanitize=thread
        # Every option the harness relies on, set here (the jail passes nothing else); the reports go
        # to stderr, which the server cannot rewrite.
        export TSAN_OPTIONS="halt_on_error=0:report_bugs=1:exitcode=66:log_path=stderr:second_deadlock_stack=1"
        server_start "${opts[@]}"
    else
        n=50 # helgrind is slow
        server_start valgrind --tool=helgrind --trace-children=yes --vgdb=no --log-fd=9 -- "${opts[@]}"
    fi
    client parallel "$n" --rounds 2
    client churn 100
    # Every connection logged "-", and counts that add up, however the lines were ordered.
    wait_until 5 ledger_right || {
        ledger_error=$(log_ledger | head -n 1)
        fail "$(eval_gettext '5 s after every client left, the log'\''s connection lines do not add up: $ledger_error — the active count is not kept right')"
    }
    stop_after_workload 30
    reports=$(files_matching "$SERVER_ERR" "$SERVER_TOOL_LOG" | xargs -r grep -lE 'WARNING: ThreadSanitizer|Possible data race|lock order' || true)
    if [[ -n $reports ]]; then
        # ThreadSanitizer's kind and first frame in server.c; helgrind's first frame.
        what=$(sanitizer_report "${reports%%$'\n'*}")
        [[ -n $what ]] || what=$(grep -m1 -A3 -E 'Possible data race' "${reports%%$'\n'*}" | grep -m1 -E 'at 0x' | sed 's/^==[0-9]*== *//')
        report_files=${reports//$'\n'/ }
        fail "$(eval_gettext 'data race reported: $what (see $report_files)')"
    fi
}
