#!/usr/bin/env bats
# races: no data race under parallel load (ThreadSanitizer build; helgrind when graded with --bin),
# and the logged active count returns to 0 once every client has left.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    LAB_START_TIMEOUT=60
    CLIENT_TIMEOUT=300
}

teardown() { lab_cleanup; }

no_race_reports() {
    local reports
    reports=$(files_matching "$LAB_LOG/tsan.*" "$LAB_LOG/helgrind.*" | xargs -r grep -lE 'WARNING: ThreadSanitizer|Possible data race|lock order' 2>/dev/null || true)
    [[ -z $reports ]] && return 0
    local first=${reports%%$'\n'*}
    lab_fail "data race reported: $(grep -m1 -A3 -E 'WARNING: ThreadSanitizer|Possible data race' "$first" | grep -m1 -E ' #[0-9]+ |at 0x' | sed 's/^==[0-9]*== *//') (see ${reports//$'\n'/ })"
}

@test "no data race under 200 parallel clients, and the active count returns to 0" {
    local n=200
    if [[ -n $LAB_SRC ]]; then
        LAB_SERVER=$(build_variant tsan gcc -O1 -fsanitize=thread)
        export TSAN_OPTIONS="halt_on_error=0:log_path=$LAB_LOG/tsan:second_deadlock_stack=1"
        server_start
    else
        n=50  # helgrind is slow
        server_start valgrind --tool=helgrind --trace-children=yes --log-file="$LAB_LOG/helgrind.%p.log" --
    fi
    client parallel "$n" --rounds 2
    client churn 100
    if ! wait_until 5 all_counts_zero; then
        lab_fail "5 s after every client left, the log still says: $(tail -n 1 "$SERVER_ERR") — the active count is not kept right"
        return 1
    fi
    stop_after_workload 30
    no_race_reports
}
