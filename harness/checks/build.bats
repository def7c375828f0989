#!/usr/bin/env bats
# points: 5
# chapters: all
# slow: no
# claim: compiles with -Wall -Wextra -Werror under gcc and clang
# hint: read the compiler's first error; unused variables, implicit declarations and sign comparisons are the usual ones
# rule: build-clean
# needs-echo: no

setup_file() { load ../lib/check && lab_setup_file; }
setup() { load ../lib/check && lab_setup; }
teardown() { lab_teardown; }

compiles_with() {
    needs_source "the build check compiles the source"
    lab_compile "$1" "$LAB_LOG/bin/server-$1" ||
        fail "$1 $(lab_cflags) failed: $(grep -m1 -E 'error' "$LAB_LOG/compile.log")"
}

@test "compiles with gcc -Wall -Wextra -Werror" {
    compiles_with gcc
}

@test "compiles with clang -Wall -Wextra -Werror" {
    command -v clang >/dev/null || skip "clang is not installed (harness/setup installs it as root)"
    compiles_with clang
}
