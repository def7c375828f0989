#!/usr/bin/env bats
# points: 15
# chapters: all
# slow: no
# claim: a second client is answered within 1 s while another is connected (01: it waits its turn; 04: client N+1 waits while N are busy)
# hint: the server must not block on one client while another is ready; for 01 and 04 the opposite is the lesson
# hint-01: 01 serves one client at a time by design: the second client must wait in the backlog (not be refused, nor answered) until the first leaves
# hint-02: after fork() the parent must go straight back to accept(): a wait() for the child there serves one client at a time
# hint-03: create the client's thread and go straight back to accept(): joining it there serves one client at a time, and so does a lock a thread holds while it serves
# hint-04: with -w N, N clients are served and client N+1 waits in the queue: a pool that serves more (a thread per client) or fewer (one worker) is wrong
# hint-05: select() overwrites the sets it is given: pass it copies of the master sets each turn, and make no blocking accept(), recv() or send() in the loop
# hint-06: every client needs its pollfd with POLLIN in the array poll() is given, and nothing in the loop may block on one client
# hint-07: every client socket must be added to the epoll set after accept4(), non-blocking, and nothing in the loop may block on one client
# hint-08: each worker must run its own event loop on its own socket; one worker blocked on a client stalls the others it holds
# rule: serves-concurrently
# rule: serves-one-at-a-time
# rule: pool-n-at-once

setup_file() { load ../lib/check && lab_setup_file; }
setup() { load ../lib/check && lab_setup; }
teardown() { lab_teardown; }

# What each model does with one client more than it serves at once: the iterative server (01)
# makes the second client wait, the pool (04 with -w 4) the fifth; every other model answers it.
# With five clients idle, the pool needs more than five workers to answer a sixth.
declare -gA MODE=([01]=serial [04]=serial) BUSY=([01]=1 [04]=4) WORKERS=([04]=4) WORKERS_FOR_SIX=([04]=8)

# start_with WORKERS: the server, with -w N where the table gives one.
start_with() {
    if [[ -n $1 ]]; then server_start -q -w "$1"; else server_start -q; fi
}

@test "a client beyond what the model serves at once waits or is answered, as the model says" {
    start_with "${WORKERS[$LAB_CHAPTER]:-}"
    client concurrency "${MODE[$LAB_CHAPTER]:-parallel}" --busy "${BUSY[$LAB_CHAPTER]:-1}"
}

@test "a client is answered while five others are connected and idle" {
    not_for 01 -- "$(gettext '01 serves one client at a time by design')"
    start_with "${WORKERS_FOR_SIX[$LAB_CHAPTER]:-}"
    client concurrency parallel --busy 5
}
