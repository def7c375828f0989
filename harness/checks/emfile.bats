#!/usr/bin/env bats
# points: 10
# chapters: all
# slow: no
# claim: under ulimit -n 64 with 100 clients: no crash, no spinning, serves again once clients leave
# hint: accept() failing with EMFILE leaves the client queued: without a spare descriptor (or a pause) the loop spins at 100% CPU
# hint-05: accept() fails with EMFILE while the client stays queued and the listener stays readable: keep a spare descriptor to accept-and-close it, or stop watching the listener for a moment
# hint-06: accept() fails with EMFILE while the client stays queued and POLLIN stays set: keep a spare descriptor to accept-and-close it, or drop the listener from the array for a moment
# hint-07: accept4() fails with EMFILE while the client stays queued: in level-triggered mode the listener fires for ever; keep a spare descriptor, or stop watching it for a moment
# hint-08: accept4() fails with EMFILE while the client stays queued: in level-triggered mode the listener fires for ever; keep a spare descriptor, or stop watching it for a moment
# rule: emfile

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016
setup_file() { load ../lib/check && lab_setup_file; }
setup() { load ../lib/check && lab_setup; }
teardown() { lab_teardown; }

@test "under ulimit -n 64, 100 clients: no crash, no spinning, serves again after" {
    server_start prlimit --nofile=64:64 -- -q
    hold_clients 100 --no-verify
    sleep 1
    cpu_below 10 2 ||
        fail "$(eval_gettext 'the server used $CPU_PCT% CPU for 2 s while out of descriptors: the accept loop spins on EMFILE')"
    assert_server_alive "$(gettext 'with 100 clients and 64 descriptors')"
    release_clients
    sleep 1
    client short
    if lab_serves_all; then client parallel 20 --rounds 2; fi
    assert_server_alive "$(gettext 'after the clients left')"
}
