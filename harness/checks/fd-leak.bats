#!/usr/bin/env bats
# points: 10
# chapters: all
# slow: no
# claim: after clients leave, the server holds as many descriptors as before they came
# hint: a descriptor not closed on some path: the parent's copy after fork(), a connection that ends with an error or a reset, the listening socket in a child
# hint-02: after fork() the parent must close the client's socket and the child the listening one: each keeps what the other does not use
# hint-05: close a connection's socket on every path that drops it: EOF, reset, error, refusal
# hint-06: close a connection's socket on every path that drops it: EOF, POLLHUP, POLLERR, reset, error
# hint-07: close a connection's socket on every path that drops it: EOF, EPOLLHUP, EPOLLERR, reset, error
# rule: no-fd-leak

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
    local before
    client short # lazily opened descriptors (if any) are opened now
    sleep 0.2
    before=$(proc fds "$SERVER_SCOPE")
    client parallel "${CROWD[$LAB_CHAPTER]:-50}" --rounds 2
    client resets 10
    client churn 200
    client halfclose
    wait_until 5 fds_back_to "$before" ||
        fail "the server held $before descriptors before the clients came and $(proc fds "$SERVER_SCOPE") five seconds after they all left"
}
