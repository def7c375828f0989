#!/usr/bin/env bats
# points: 10
# chapters: 02 08
# slow: no
# claim: no zombie child remains after clients leave
# hint: SIGCHLD must be handled by reaping with waitpid(-1, &status, WNOHANG) in a loop (one signal may stand for several children)
# hint-02: reap in a loop, while (waitpid(-1, &status, WNOHANG) > 0), since one SIGCHLD may stand for several children
# hint-08: the master must reap a dead worker (waitpid) before it starts another in its place
# rule: children-reaped

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    server_start -q
}
teardown() { lab_teardown; }

no_zombies() { (($(proc zombies "$SERVER_SCOPE") == 0)); }

@test "no zombie child remains after 300 clients leave (200 at once, then 100 one by one)" {
    client parallel 200 --rounds 1
    client churn 100
    sleep 1
    local zombies
    wait_until 3 no_zombies || {
        zombies=$(proc zombies "$SERVER_SCOPE") || true
        fail "$(eval_gettext '$zombies zombie children 4 s after 300 clients left')"
    }
}

@test "08: a worker that dies is reaped" {
    only_for 08 -- "$(gettext 'only 08 has workers')"
    local victim
    victim=$(proc children "$SERVER_PID" | head -n 1)
    [[ -n $victim ]] || fail "$(gettext 'the master has no worker process')"
    kill -KILL "$victim"
    sleep 1
    wait_until 2 no_zombies || fail "$(eval_gettext 'worker $victim, killed, is still a zombie 3 s later: the master does not reap')"
}
