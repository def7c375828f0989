#!/usr/bin/env bats
# points: 10
# chapters: all
# slow: no
# claim: peer resets, 1,000 connect-then-close, writes to vanished peers (SIGPIPE) and a slow reader do not kill or stall the server
# hint: ignore SIGPIPE (or send with MSG_NOSIGNAL); treat ECONNRESET/EPIPE as the end of that connection only; never block on one client's send() in an event loop
# hint-02: ignore SIGPIPE (or send with MSG_NOSIGNAL) in the children; the parent must never block while a child lives: reap with waitpid(-1, &status, WNOHANG) in a loop, never wait() or waitpid(..., 0)
# rule: reset-one
# rule: sigpipe
# rule: event-loop-bounded

# eval_gettext substitutes the $variables of its single-quoted msgid after translation
# (lib/check.bash).
# shellcheck disable=SC2016,SC2034
setup_file() { load ../lib/check && lab_setup_file; }
setup() {
    load ../lib/check && lab_setup
    server_start -q
}
teardown() { lab_teardown; }

@test "peers that reset mid-stream end only their own connection" {
    client resets 20
    assert_server_alive "$(gettext 'after 20 peers reset mid-stream')"
}

@test "1,000 connect-then-close do not hurt the server" {
    client churn 1000
    assert_server_alive "$(gettext 'after 1,000 connect-then-close')"
}

@test "writing to a vanished peer (SIGPIPE) does not kill the server" {
    client sigpipe 20
    assert_server_alive "$(gettext 'after writing to vanished peers: SIGPIPE is not ignored')"
}

# What the server does, rather than what happens to it (the probe above is a matter of timing):
# SIGPIPE ignored, caught or blocked in every process and thread, read from /proc while clients
# are connected (02's children and 03's threads live only then); failing that, every write to a
# socket must be a send() with MSG_NOSIGNAL, which strace sees during an echo workload.
@test "SIGPIPE cannot kill the server: ignored in every task, or every socket write says MSG_NOSIGNAL" {
    local exposed unsafe tasks first_tasks
    hold_idle 2
    assert_server_alive "$(gettext 'with 2 clients connected')"
    exposed=$(proc sigpipe "$SERVER_SCOPE") || fail "$(gettext 'the server'\''s processes vanished while 2 clients were connected')"
    [[ -n $exposed ]] || return 0
    lab_teardown
    server_start strace -f -yy -qq -o /proc/self/fd/9 \
        -e trace=write,writev,pwritev,pwritev2,send,sendto,sendmsg,sendmmsg,sendfile,splice -- -q
    client short
    client binary
    client pipeline
    client halfclose-corked
    if lab_serves_all; then client parallel 10 --rounds 2; fi
    unsafe=$(proc socket-writes "$SERVER_TOOL_LOG")
    [[ -z $unsafe ]] || {
        tasks=$(wc -l <<<"$exposed")
        first_tasks=$(head -n 3 <<<"$exposed" | paste -sd ' ')
        fail "$(eval_gettext 'SIGPIPE keeps its default action (in $tasks task(s): $first_tasks) and the server writes to clients with $unsafe: a client that vanishes kills the server')"
    }
}

@test "a client that sends 16 MiB and reads nothing neither delays others nor grows the server" {
    not_for 01 -- "$(gettext '01 serves one client at a time by design')"
    local rss0 peak slow grown_mib
    rss0=$(proc rss "$SERVER_SCOPE")
    client_bg slow slowreader --seconds 4
    slow=$BG_PID
    peak=$(proc peak rss "$SERVER_SCOPE" --while "$slow")
    client_bg_wait slow "$slow"
    ((peak - rss0 <= 4096)) || {
        grown_mib=$(((peak - rss0) / 1024))
        fail "$(eval_gettext 'the server'\''s memory grew by $grown_mib MiB while a client sent 16 MiB and read nothing: pending output must be capped (stop reading at the watermark)')"
    }
}
