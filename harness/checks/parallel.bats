#!/usr/bin/env bats
# points: 10
# chapters: 02 03 04 05 06 07 08
# slow: no
# claim: many clients at once (100 for 02, 500 for 03-05, 1,000 for 06-08), each with its own payloads, every byte right
# hint: look for state shared between clients (one buffer for all, a global fd), a backlog smaller than SOMAXCONN, or a cap on clients
# hint-03: each thread must get its own client: pass pthread_create() memory of its own (malloc'd), never the address of a variable the next accept() overwrites
# rule: echo
# rule: serves-concurrently

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016
setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    server_start -q
}
teardown() { lab_teardown; }

# Clients at once: a process each for 02, a thread each for 03, the descriptors select() can
# watch for 05; the others are built for more.
declare -gA CROWD=([02]=100 [03]=500 [04]=500 [05]=500 [06]=1000 [07]=1000 [08]=1000)

@test "many clients at once each get their own bytes back" {
    local crowd=${CROWD[$LAB_CHAPTER]}
    ulimit -n 20000 2>/dev/null || true
    client parallel "$crowd" --rounds 3
    assert_server_alive "$(eval_gettext 'after $crowd parallel clients')"
}
