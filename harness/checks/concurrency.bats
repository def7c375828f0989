#!/usr/bin/env bats
# points: 15
# chapters: all
# slow: no
# claim: a second client is answered within 1 s while another is connected (01: it waits its turn; 04: client N+1 waits while N are busy)
# hint: the server must not block on one client while another is ready; for 01 and 04 the opposite is the lesson

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
    not_for 01 -- "01 serves one client at a time by design"
    start_with "${WORKERS_FOR_SIX[$LAB_CHAPTER]:-}"
    client concurrency parallel --busy 5
}
