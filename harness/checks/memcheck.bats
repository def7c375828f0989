#!/usr/bin/env bats
# memcheck: under valgrind memcheck (children followed), a workload then SIGTERM:
# no memory error, no byte definitely or indirectly lost.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    LAB_START_TIMEOUT=60
    CLIENT_TIMEOUT=300
}

teardown() { lab_cleanup; }

@test "valgrind memcheck: no error and no leak after a workload and SIGTERM" {
    server_start valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --trace-children=yes --child-silent-after-fork=no \
        --log-file="$LAB_LOG/memcheck.%p.log" -- -q
    lab_workload
    stop_after_workload 30
    local f bad=""
    for f in "$LAB_LOG"/memcheck.*.log; do
        grep -q 'ERROR SUMMARY: 0 errors' "$f" || bad+=" $(basename "$f")"
    done
    if [[ -n $bad ]]; then
        f=${bad%% *}; f=${bad#* }; f=${f%% *}
        lab_fail "valgrind found errors or leaks ($(grep -m1 -oE 'ERROR SUMMARY: [0-9]+ errors' "$LAB_LOG/$f"); first: $(grep -m1 -E '^==[0-9]+== [A-Z][a-z].*(Invalid|uninitialised|definitely lost|indirectly lost|Mismatched|free)' "$LAB_LOG/$f" | sed 's/^==[0-9]*== //')); see$bad"
    fi
}
