#!/usr/bin/env bats
# sanitize: an AddressSanitizer + UndefinedBehaviorSanitizer build under the memcheck workload.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    [[ -n $LAB_SRC ]] || skip "no source to build with the sanitizers (graded with --bin); memcheck covers it"
    CLIENT_TIMEOUT=300
}

teardown() { lab_cleanup; }

@test "AddressSanitizer + UBSan: nothing reported after a workload and SIGTERM" {
    local exe
    exe=$(build_variant asan gcc -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all)
    LAB_SERVER=$exe
    export ASAN_OPTIONS="detect_leaks=1:log_path=$LAB_LOG/asan:exitcode=86"
    export UBSAN_OPTIONS="print_stacktrace=1:log_path=$LAB_LOG/ubsan:halt_on_error=1"
    server_start -q
    lab_workload
    stop_after_workload 10
    local reports
    reports=$(files_matching "$LAB_LOG/asan.*" "$LAB_LOG/ubsan.*")
    if [[ -n $reports ]]; then
        lab_fail "the sanitizers reported: $(grep -m1 -hE 'ERROR|runtime error' "${reports%%$'\n'*}") (see ${reports//$'\n'/ })"
    fi
}
