#!/usr/bin/env bats
# robustness: what clients do to a server on a bad day does not kill or stall it.

setup() {
    bats_require_minimum_version 1.5.0
    load ../lib/check
    server_start -q
}

teardown() { lab_cleanup; }

@test "peers that reset mid-stream end only their own connection" {
    client resets 20
    server_alive || lab_fail "the server died ($(server_death))"
}

@test "1,000 connect-then-close do not hurt the server" {
    client churn 1000
    server_alive || lab_fail "the server died ($(server_death))"
}

@test "writing to a vanished peer (SIGPIPE) does not kill the server" {
    client sigpipe 20
    server_alive || lab_fail "the server died ($(server_death)): SIGPIPE is not ignored"
}

@test "a client that sends 16 MiB and reads nothing neither delays others nor grows the server" {
    [[ $LAB_CHAPTER != 01 ]] || skip "01 serves one client at a time by design"
    local rss0 rss peak=0 st
    rss0=$(proc rss "$SERVER_PID")
    client_bg slow slowreader --seconds 4
    while kill -0 "$CLIENT_slow" 2>/dev/null; do
        rss=$(proc rss "$SERVER_PID" 2>/dev/null || echo 0)
        ((rss > peak)) && peak=$rss
        sleep 0.1
    done
    wait "$CLIENT_slow" && st=0 || st=$?
    if ((st != 0)); then
        if server_alive; then lab_fail "$(tail -n 1 "$LAB_LOG/client.slow")"; else lab_fail "the server died ($(server_death))"; fi
        return 1
    fi
    if ((peak - rss0 > 4096)); then
        lab_fail "the server's memory grew by $(((peak - rss0) / 1024)) MiB while a client sent 16 MiB and read nothing: pending output must be capped (stop reading at the watermark)"
    fi
}
