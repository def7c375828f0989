#!/usr/bin/env bats
# points: 10
# chapters: all
# slow: no
# claim: after clients leave, the server holds as many descriptors as before they came, and keeps no ended thread's stack
# hint: a descriptor not closed on some path: the parent's copy after fork(), a connection that ends with an error or a reset, the listening socket in a child
# hint-02: after fork() the parent must close the client's socket and the child the listening one: each keeps what the other does not use
# hint-03: close the client's socket on every path its thread ends by, and detach each client thread (or join it): a thread that ends and is neither keeps its stack mapped
# hint-05: close a connection's socket on every path that drops it: EOF, reset, error, refusal
# hint-06: close a connection's socket on every path that drops it: EOF, POLLHUP, POLLERR, reset, error
# hint-07: close a connection's socket on every path that drops it: EOF, EPOLLHUP, EPOLLERR, reset, error
# rule: no-fd-leak
# rule: threads-released

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    server_start -q
}
teardown() { lab_teardown; }

# Clients at once in the parallel round: the iterative server takes them one by one.
declare -gA CROWD=([01]=1)

fds_back_to() { (($(proc fds "$SERVER_SCOPE") <= $1)); }

@test "descriptors return to their count once clients leave" {
    local before after
    client short # lazily opened descriptors (if any) are opened now
    sleep 0.2
    before=$(proc fds "$SERVER_SCOPE")
    client parallel "${CROWD[$LAB_CHAPTER]:-50}" --rounds 2
    client resets 10
    client churn 200
    client halfclose
    wait_until 5 fds_back_to "$before" || {
        after=$(proc fds "$SERVER_SCOPE") || true
        fail "$(eval_gettext 'the server held $before descriptors before the clients came and $after five seconds after they all left')"
    }
}

# A thread that ends, neither joined nor detached, keeps its stack (two mappings: the stack and its
# guard page, 8 MiB of address space by default) until someone joins it. Whole sessions one after
# the other (at most a couple of threads alive, so glibc's cache of stacks serves them all): after
# the first ones, 200 more must leave the mappings where they were, give or take malloc's own (a
# leak adds 400).
maps_at_most() { local m; m=$(proc maps "$SERVER_SCOPE") && ((m <= $1)); }

@test "ended threads leave nothing mapped: 200 more clients, no more memory mappings" {
    local before after per_client
    client sessions 20
    sleep 0.2
    before=$(proc maps "$SERVER_SCOPE") || fail "$(gettext 'could not read the server'\''s memory mappings (/proc/PID/maps)')"
    client sessions 200
    wait_until 5 maps_at_most $((before + 40)) || {
        after=$(proc maps "$SERVER_SCOPE")
        per_client=$(((after - before + 100) / 200))
        fail "$(eval_gettext 'the server had $before memory mappings after 20 clients and $after five seconds after 200 more had come and gone one by one, $per_client more per client: an ended thread that is neither joined nor detached keeps its stack mapped')"
    }
    after=$(proc maps "$SERVER_SCOPE") || true
    measured "$(eval_gettext '$before memory mappings after 20 clients, $after after 200 more')"
}
