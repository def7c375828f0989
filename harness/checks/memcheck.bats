#!/usr/bin/env bats
# points: 10
# chapters: all
# slow: yes
# claim: under valgrind memcheck, a workload then SIGTERM: no memory error, no byte definitely or indirectly lost
# hint: every malloc needs its free on every path, including shutdown: the connection table, per-connection buffers, the queue

setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    # shellcheck disable=SC2034 # read by server_start and client (check.bash)
    LAB_START_TIMEOUT=60 CLIENT_TIMEOUT=300
}
teardown() { lab_teardown; }

@test "valgrind memcheck: no error and no leak after a workload and SIGTERM" {
    local bad
    server_start valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --trace-children=yes --child-silent-after-fork=no \
        --vgdb=no --log-fd=9 -- -q
    lab_workload
    stop_after_workload 30
    # One log for the server and its children, each line headed ==PID==: every process must end
    # with "ERROR SUMMARY: 0 errors" (one that has no summary line at all died unreported).
    bad=$(vg_bad_pids "$SERVER_TOOL_LOG")
    [[ -z $bad ]] && return 0
    fail "valgrind found errors or leaks in process $bad ($(grep -m1 -oE "^==$bad== ERROR SUMMARY: [0-9]+ errors" "$SERVER_TOOL_LOG" | sed 's/^==[0-9]*== //'); first: $(grep -m1 -E "^==$bad== [A-Z][a-z].*(Invalid|uninitialised|definitely lost|indirectly lost|Mismatched|free)" "$SERVER_TOOL_LOG" | sed 's/^==[0-9]*== //')); see $SERVER_TOOL_LOG"
}
