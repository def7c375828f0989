#!/usr/bin/env bats
# points: 10
# chapters: all
# slow: yes
# claim: under valgrind memcheck, a workload then SIGTERM: no memory error, no byte definitely or indirectly lost
# hint: every malloc needs its free on every path, including shutdown: the connection table, per-connection buffers, the queue
# rule: memory-clean

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

@test "valgrind memcheck: no error and no leak after a workload and SIGTERM" {
    local verdicts bad opts summary first_error
    mapfile -t opts < <(tool_opts)
    server_start valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --trace-children=yes --child-silent-after-fork=no \
        --vgdb=no --log-fd=9 -- -q "${opts[@]}"
    lab_workload
    stop_after_workload 30
    # One log for the server and its children, each line headed ==PID==: every process must end
    # with "ERROR SUMMARY: 0 errors". One with no summary at all was killed before valgrind could
    # write it: the server itself, that is a failure (it died unreported); a child or worker, it
    # is what a master's stop deadline does to a process slowed by valgrind: said, not counted.
    verdicts=$(vg_verdicts "$SERVER_TOOL_LOG")
    bad=$(awk '$2 == "errors" { print $1; exit }' <<<"$verdicts" || true)
    if [[ -n $bad ]]; then
        summary=$(grep -m1 -oE "^==$bad== ERROR SUMMARY: [0-9]+ errors" "$SERVER_TOOL_LOG" | sed 's/^==[0-9]*== //')
        first_error=$(vg_first_error "$SERVER_TOOL_LOG" "$bad")
        fail "$(eval_gettext 'valgrind found errors or leaks in process $bad ($summary; first: $first_error); see $SERVER_TOOL_LOG')"
    fi
    ! grep -q ' unsummarised first' <<<"$verdicts" ||
        fail "$(eval_gettext 'the server ended without valgrind'\''s summary (it was killed, or killed itself, before valgrind could write one); see $SERVER_TOOL_LOG')"
    bad=$(awk '$2 == "unsummarised" { printf "%s%s", sep, $1; sep = ", " }' <<<"$verdicts")
    [[ -z $bad ]] || measured "$(eval_gettext 'process(es) $bad ended before valgrind'\''s summary: killed at the stop deadline under valgrind, their memory not checked')"
}
