#!/usr/bin/env bats
# points: 5
# chapters: all
# slow: no
# claim: compiles with -Wall -Wextra -Werror under gcc and clang
# hint: read the compiler's first error; unused variables, implicit declarations and sign comparisons are the usual ones
# rule: build-clean
# needs-echo: no

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() { load ../lib/check && lab_setup; }
teardown() { lab_teardown; }

compiles_with() {
    local compiler=$1 flags first_error
    needs_source "$(gettext 'the build check compiles the source')"
    lab_compile "$compiler" "$LAB_LOG/bin/server-$compiler" || {
        flags=$(lab_cflags)
        first_error=$(grep -m1 -E 'error' "$LAB_LOG/compile.log") || true
        fail "$(eval_gettext '$compiler $flags failed: $first_error')"
    }
}

@test "compiles with gcc -Wall -Wextra -Werror" {
    compiles_with gcc
}

@test "compiles with clang -Wall -Wextra -Werror" {
    command -v clang >/dev/null || skip "$(gettext 'clang is not installed (harness/setup installs it as root)')"
    compiles_with clang
}
