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
    local bad first
    server_start valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --trace-children=yes --child-silent-after-fork=no \
        --log-file="$LAB_LOG/memcheck.%p.log" -- -q
    lab_workload
    stop_after_workload 30
    bad=$(grep -L 'ERROR SUMMARY: 0 errors' "$LAB_LOG"/memcheck.*.log || true)
    [[ -z $bad ]] && return 0
    first=${bad%%$'\n'*}
    fail "valgrind found errors or leaks ($(grep -m1 -oE 'ERROR SUMMARY: [0-9]+ errors' "$first"); first: $(grep -m1 -E '^==[0-9]+== [A-Z][a-z].*(Invalid|uninitialised|definitely lost|indirectly lost|Mismatched|free)' "$first" | sed 's/^==[0-9]*== //')); see ${bad//$'\n'/ }"
}
