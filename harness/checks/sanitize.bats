#!/usr/bin/env bats
# points: 5
# chapters: all
# slow: yes
# claim: an AddressSanitizer + UndefinedBehaviorSanitizer build reports nothing under the same workload
# hint: an out-of-bounds access or use after free; the report names the line
# hint-07: an out-of-bounds access or use after free; the report names the line: once a connection is freed, nothing may touch it in the same turn of the loop
# hint-08: an out-of-bounds access or use after free; the report names the line: once a connection is freed, nothing may touch it in the same turn of the loop
# rule: memory-clean

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    # shellcheck disable=SC2034 # read by client (check.bash)
    CLIENT_TIMEOUT=300
}
teardown() { lab_teardown; }

@test "AddressSanitizer + UBSan: nothing reported after a workload and SIGTERM" {
    needs_source "$(gettext 'memcheck covers a binary')"
    build_variant asan gcc -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
    # Every option the harness relies on, set here (the jail passes nothing else); the reports go
    # to stderr, which the server cannot rewrite.
    export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=86:log_path=stderr"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=stderr"
    export LSAN_OPTIONS="report_objects=0"
    local opts report
    mapfile -t opts < <(tool_opts)
    server_start -q "${opts[@]}"
    lab_workload
    stop_after_workload 10
    ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error' "$SERVER_ERR" || {
        report=$(sanitizer_report "$SERVER_ERR")
        fail "$(eval_gettext 'the sanitizers reported: $report (see $SERVER_ERR)')"
    }
}
