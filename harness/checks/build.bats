#!/usr/bin/env bats
# build: the server compiles cleanly with the lab's warning flags, under gcc and clang.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    [[ -n $LAB_SRC ]] || skip "no source to compile (graded with --bin)"
}

teardown() { lab_cleanup; }

compile_with() {
    local cc=$1
    # shellcheck disable=SC2046
    if ! "$cc" $(lab_cflags) -o "$BATS_TEST_TMPDIR/server" "$LAB_SRC" >"$LAB_LOG/$cc.log" 2>&1; then
        lab_fail "$cc $(lab_cflags) failed: $(grep -m1 -E 'error|warning' "$LAB_LOG/$cc.log")"
        return 1
    fi
}

@test "compiles with gcc -Wall -Wextra -Werror" {
    compile_with gcc
}

@test "compiles with clang -Wall -Wextra -Werror" {
    command -v clang >/dev/null || skip "clang is not installed (harness/setup installs it as root)"
    compile_with clang
}
