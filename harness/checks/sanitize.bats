#!/usr/bin/env bats
# points: 5
# chapters: all
# slow: yes
# claim: an AddressSanitizer + UndefinedBehaviorSanitizer build reports nothing under the same workload
# hint: an out-of-bounds access or use after free; the report names the line

setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    # shellcheck disable=SC2034 # read by client (check.bash)
    CLIENT_TIMEOUT=300
}
teardown() { lab_teardown; }

@test "AddressSanitizer + UBSan: nothing reported after a workload and SIGTERM" {
    local reports
    needs_source "memcheck covers a binary"
    build_variant asan gcc -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
    export ASAN_OPTIONS="detect_leaks=1:log_path=$LAB_LOG/asan:exitcode=86"
    export UBSAN_OPTIONS="print_stacktrace=1:log_path=$LAB_LOG/ubsan:halt_on_error=1"
    server_start -q
    lab_workload
    stop_after_workload 10
    reports=$(files_matching "$LAB_LOG/asan.*" "$LAB_LOG/ubsan.*")
    [[ -z $reports ]] ||
        fail "the sanitizers reported: $(grep -m1 -hE 'ERROR|runtime error' "${reports%%$'\n'*}") (see ${reports//$'\n'/ })"
}
