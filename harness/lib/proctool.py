#!/usr/bin/env python3
"""What the harness observes of a running server from outside, through /proc.

A SCOPE is the whole submission: "tree:INIT", every process below INIT, the init of the
submission's own sandbox (lib/sandbox.bash: a process that leaves its group or session with
setsid() is still there, and INIT itself, the harness's, is not counted); or "group:PGID" (or a
bare PGID), a process group, where there is no sandbox (plain bats).

    proctool.py pids SCOPE             live processes of the submission, one per line
    proctool.py fds SCOPE              open descriptors of all its processes
    proctool.py zombies SCOPE          zombie processes in it (children nobody reaped)
    proctool.py threads SCOPE|PID      threads of all its processes (of one process: a bare PID)
    proctool.py rss SCOPE              resident memory of all its processes, KiB
    proctool.py maps SCOPE             memory mappings of all its processes (a thread's stack is
                                       two: the stack and its guard page); exit 1 if none of them
                                       could be read
    proctool.py children PID           direct children of PID that are alive (not zombies)
    proctool.py cpu SCOPE SECONDS      CPU used by the submission over the next SECONDS, in percent
                                       of one core (user + system, its processes and those that
                                       ended and were reaped meanwhile)
    proctool.py peak rss|threads SCOPE --while PID
                                       the peak of its memory (KiB) or threads, sampled every
                                       0.05 s while process PID lives (at most 600 s)
    proctool.py ready FILE PID SECONDS wait for the ready line "listening on ADDR:PORT" in FILE,
                                       written by process PID: prints the port; exit 1 if PID
                                       exits first, 3 on the time limit
    proctool.py sigpipe SCOPE          tasks of the submission exposed to SIGPIPE (neither
                                       ignored, caught nor blocked in that thread), one "PID/TID
                                       (name)" a line, nothing when all are safe; a tracer (strace)
                                       is left out; exit 1 if none of its processes lives
    proctool.py socket-writes LOG...   read strace -f -yy logs: one line naming the first kind of
                                       write to a TCP socket that can raise SIGPIPE (write(),
                                       writev(), sendfile(), splice(), send*() without
                                       MSG_NOSIGNAL) and how many; nothing when every one is
                                       safe; exit 1 if a log cannot be read

A process that vanishes while it is being read is simply not counted. What a student may read (an
error, socket-writes' line, which a check quotes) is in their language (harness/lib/i18n.py); what
the checks compute with (figures, pids, ports) is not words.
"""

import os
import re
import sys
import time

from i18n import _, ngettext

TICKS = os.sysconf("SC_CLK_TCK")
READY = re.compile(rb"^listening on .*:([0-9]+)$", re.M)


def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def all_stats():
    out = {}
    for pid in all_pids():
        try:
            out[pid] = stat_fields(pid)
        except (OSError, ValueError):
            continue
    return out


def parse_scope(text):
    """("tree", INIT) or ("group", PGID) from "tree:N", "group:N" or "N"."""
    kind, _sep, n = text.rpartition(":")
    if kind not in ("", "tree", "group") or not n.isdigit():
        sys.exit(__doc__)
    return (kind or "group", int(n))


def group(scope):
    """(pid, fields) for every process of the scope: below the tree's init, or in the group (a
    bare number: a process group, as harness/bench/run passes it)."""
    kind, n = scope if isinstance(scope, tuple) else ("group", scope)
    stats = all_stats()
    if kind == "group":
        return [(pid, f) for pid, f in stats.items() if int(f[2]) == n]  # field 5 of stat: pgrp
    children = {}
    for pid, f in stats.items():
        children.setdefault(int(f[1]), []).append(pid)  # field 4: ppid
    out, todo = [], list(children.get(n, []))
    while todo:
        pid = todo.pop()
        out.append((pid, stats[pid]))
        todo.extend(children.get(pid, []))
    return out


def live(scope):
    return [pid for pid, f in group(scope) if f[0] != "Z"]


def count_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def count_threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def group_rss(scope):
    total = 0
    for pid in live(scope):
        try:
            with open(f"/proc/{pid}/status") as st:
                total += next((int(l.split()[1]) for l in st if l.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total


def group_cpu_seconds(scope):
    """utime + stime of its processes, and in a tree their reaped children's (cutime + cstime),
    the init's included: a process that ends and is reaped keeps counting."""
    if not isinstance(scope, tuple) or scope[0] == "group":
        return sum(int(f[11]) + int(f[12]) for _, f in group(scope)) / TICKS
    ticks = sum(sum(int(x) for x in f[11:15]) for _, f in group(scope))
    try:
        ticks += sum(int(x) for x in stat_fields(scope[1])[13:15])
    except (OSError, ValueError):
        pass
    return ticks / TICKS


def group_threads(scope):
    return sum(count_threads(pid) for pid in live(scope))


def alive(pid):
    """Alive and not a zombie (a zombie is dead, only not yet collected)."""
    try:
        return stat_fields(pid)[0] != "Z"
    except (OSError, ValueError):
        return False


def cmd_pids(n):
    for pid in live(n):
        print(pid)


def cmd_fds(n):
    print(sum(count_fds(pid) for pid in live(n)))


def count_maps(pid):
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return None


def cmd_maps(n):
    counts = [c for c in (count_maps(pid) for pid in live(n)) if c is not None]
    if not counts:
        sys.exit(1)
    print(sum(counts))


def cmd_zombies(n):
    print(sum(1 for _, f in group(n) if f[0] == "Z"))


def cmd_threads(n):
    if isinstance(n, tuple):
        if not live(n):
            sys.exit("proctool: " + _("no process of the submission is left"))
        print(group_threads(n))
        return
    if not os.path.isdir(f"/proc/{n}"):
        sys.exit("proctool: " + _("process {pid} is gone").format(pid=n))
    print(count_threads(n))


def cmd_rss(n):
    print(group_rss(n))


def cmd_children(n):
    for pid in all_pids():
        try:
            f = stat_fields(pid)
        except (OSError, ValueError):
            continue
        if int(f[1]) == n and f[0] != "Z":
            print(pid)


def cmd_cpu(n, seconds):
    t0, c0 = time.monotonic(), group_cpu_seconds(n)
    time.sleep(float(seconds))
    c1, t1 = group_cpu_seconds(n), time.monotonic()
    print("%.1f" % (100 * (c1 - c0) / (t1 - t0)))


def cmd_peak(what, n, flag, pid):
    if flag != "--while" or what not in ("rss", "threads"):
        sys.exit(__doc__)
    sample = group_rss if what == "rss" else group_threads
    peak, deadline = 0, time.monotonic() + 600
    while alive(int(pid)) and time.monotonic() < deadline:
        peak = max(peak, sample(n))
        time.sleep(0.05)
    print(peak)


def cmd_ready(path, pid, seconds):
    deadline = time.monotonic() + float(seconds)
    while True:
        try:
            with open(path, "rb") as f:
                m = READY.search(f.read())
        except OSError:
            m = None
        if m:
            print(m.group(1).decode())
            return
        if not alive(int(pid)):
            sys.exit(1)
        if time.monotonic() >= deadline:
            sys.exit(3)
        time.sleep(0.02)


SIGPIPE_BIT = 1 << (13 - 1)  # SIGPIPE is signal 13: bit 12 of the /proc status masks


def task_status(pid, tid):
    """{field: value} of /proc/PID/task/TID/status, or None if the task is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
    except OSError:
        return None


def cmd_sigpipe(n):
    """A write to a vanished peer raises SIGPIPE in the thread that wrote: that thread is safe if
    the signal is ignored or caught (per process) or blocked (per thread).  Zombie tasks (an
    exited thread, a process nobody reaped) write nothing and are not counted."""
    procs = {}
    for pid, _fields in group(n):
        try:
            tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
        tasks = [(tid, task_status(pid, tid)) for tid in tids]
        tasks = [(tid, st) for tid, st in tasks if st and st.get("State", "Z")[0] not in "ZX"]
        if tasks:
            procs[pid] = tasks
    if not procs:
        sys.exit("proctool: " + _("no process of the submission is left"))
    # A wrapper that traces the server (setsid strace -f ... ./server) is in the group too: it is
    # not the server, whatever it does with SIGPIPE.
    tracers = {int(st.get("TracerPid", "0")) for tasks in procs.values() for _, st in tasks}
    for pid, tasks in procs.items():
        if pid in tracers:
            continue
        for tid, st in tasks:
            try:
                masks = [int(st[k], 16) for k in ("SigBlk", "SigIgn", "SigCgt")]
            except (KeyError, ValueError):
                continue
            if not any(m & SIGPIPE_BIT for m in masks):
                print(f"{pid}/{tid} ({st.get('Name', '?')})")


# strace's lines: "[PID] [TIME] call(args" then ") = RESULT", or "<unfinished ...>" and later
# "[PID] [TIME] <... call resumed>rest".  With -o and -f the pid leads bare, on stderr as [pid N].
STRACE_HEAD = re.compile(r"^\s*(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(?:\d[\d:.]*\s+)?")
STRACE_CALL = re.compile(r"([a-z_0-9]+)\((.*)$", re.S)
STRACE_RESUMED = re.compile(r"<\.\.\. ([a-z_0-9]+) resumed>\s?(.*)$", re.S)
UNFINISHED = " <unfinished ...>"
# -yy decorates a descriptor: 4<TCP:[127.0.0.1:8080->127.0.0.1:41234]>, 5<TCPv6:[...]>,
# 2</tmp/err>, 1</dev/null<char 1:3>>, 6<pipe:[1234]>, 7<anon_inode:[eventfd]>,
# 8<UNIX-STREAM:[1->2]>, or 9<socket:[1234]> when strace could not tell the protocol.
FD_DECORATION = re.compile(r"^(-?\d+)<(.*)>$", re.S)
MSG_NOSIGNAL = 0x4000
SOCKET_CALLS = {  # name: (index of the descriptor written to, index of the flags or None)
    "write": (0, None), "writev": (0, None), "pwritev": (0, None), "pwritev2": (0, None),
    "sendfile": (0, None), "sendfile64": (0, None), "splice": (2, None),
    "send": (0, 3), "sendto": (0, 3), "sendmsg": (0, 2), "sendmmsg": (0, 3),
}
CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}


def split_args(text):
    """Top-level arguments of a strace call: commas inside "strings" (with \\-escapes), (...),
    [...], {...} and <...> do not split.  A > only closes a < (the -> in TCP:[a->b] does not)."""
    args, cur, stack, quoted, escaped = [], [], [], False, False
    for ch in text:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "([{<":
            stack.append(ch)
        elif ch in CLOSERS and stack and stack[-1] == CLOSERS[ch]:
            stack.pop()
        elif ch == ")" and not stack:
            break  # the end of the arguments
        elif ch == "," and not stack:
            args.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    args.append("".join(cur).strip())
    return args


def socket_kind(fd_arg):
    """'TCP socket' (TCP or TCPv6), 'socket' (protocol unknown to strace), or None (a file, a
    pipe, an eventfd, a UNIX or UDP socket: no client is at the other end); in the student's
    language (words of unsafe_write's sentences)."""
    m = FD_DECORATION.match(fd_arg)
    if not m:
        return None
    path = m.group(2)
    if re.match(r"TCP(v6)?:\[", path):
        return _("TCP socket")
    if path.startswith("socket:["):
        return _("socket")
    return None


def has_nosignal(flags):
    for word in flags.split("|"):
        word = word.strip()
        if word == "MSG_NOSIGNAL":
            return True
        try:
            if int(word, 0) & MSG_NOSIGNAL:
                return True
        except ValueError:
            pass
    return False


def unsafe_write(call, args):
    """(what, advice): how a student would name and fix this call; None if it cannot raise
    SIGPIPE (not on a TCP socket, or a send*() with MSG_NOSIGNAL)."""
    fd_index, flags_index = SOCKET_CALLS[call]
    if len(args) <= fd_index:
        return None
    kind = socket_kind(args[fd_index])
    if kind is None:
        return None
    if flags_index is None:
        if call == "write":
            fix = _("use send(fd, buf, len, MSG_NOSIGNAL)")
        elif call.startswith(("writev", "pwritev")):
            fix = _("use sendmsg(fd, &msg, MSG_NOSIGNAL) with the same iovec")
        else:
            fix = _("ignore SIGPIPE (sigaction with SIG_IGN) before the first client")
        # TRANSLATORS: {call} is a system call's name ("write"), {kind} "TCP socket" or "socket".
        what = _("{call}() on a {kind}").format(call=call, kind=kind)
        # TRANSLATORS: {call} is a system call's name ("write"); {fix} an advice, "use send(fd, buf,
        # len, MSG_NOSIGNAL)".
        return what, _("{call}() cannot carry MSG_NOSIGNAL; {fix}").format(call=call, fix=fix)
    if len(args) <= flags_index:
        return None  # cut short (a process killed mid-call): nothing to judge
    flags = args[flags_index]
    if has_nosignal(flags):
        return None
    name = call
    if call == "sendto" and args[4:6] == ["NULL", "0"]:
        name = "send"  # how the C library's send() reaches the kernel: sendto(fd, buf, len, flags, NULL, 0)
    how = {"send": "send(fd, buf, len, MSG_NOSIGNAL)",
           "sendto": "sendto(fd, buf, len, MSG_NOSIGNAL, addr, addrlen)",
           "sendmsg": "sendmsg(fd, &msg, MSG_NOSIGNAL)",
           "sendmmsg": "sendmmsg(fd, msgs, n, MSG_NOSIGNAL)"}[name]
    what = _("{call}() without MSG_NOSIGNAL").format(call=name)
    if name != call:
        # TRANSLATORS: {kind} is "TCP socket" or "socket"; {flags} the flags strace saw ("0");
        # {how} the call with MSG_NOSIGNAL, "send(fd, buf, len, MSG_NOSIGNAL)".
        return what, _("{kind}, seen as sendto(fd, buf, len, {flags}, NULL, 0); use {how}, or ignore SIGPIPE").format(
            kind=kind, flags=flags, how=how)
    # TRANSLATORS: {kind} is "TCP socket" or "socket"; {flags} the flags strace saw ("MSG_DONTWAIT");
    # {how} the call with MSG_NOSIGNAL, "sendmsg(fd, &msg, MSG_NOSIGNAL)".
    return what, _("{kind}, flags {flags}; use {how}, or ignore SIGPIPE").format(kind=kind, flags=flags, how=how)


def strace_calls(path):
    """(call, argument text) of every call in one strace log, the parts of a call that -f split
    into "<unfinished ...>" and "<... call resumed>" put back together."""
    pending = {}  # pid: (call, its arguments so far)
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            head = STRACE_HEAD.match(line)
            pid = head.group(1) or head.group(2)
            rest = line[head.end():]
            m = STRACE_RESUMED.match(rest)
            if m:
                if pid in pending and pending[pid][0] == m.group(1):
                    call, start = pending.pop(pid)
                    yield call, start + m.group(2)
                continue
            m = STRACE_CALL.match(rest)
            if not m:
                continue  # --- signals ---, +++ exits +++, strace's own messages
            call, text = m.groups()
            if text.endswith(UNFINISHED):
                pending[pid] = (call, text[:-len(UNFINISHED)])
            else:
                yield call, text
    # A call never resumed (its process was killed in it) was made all the same.
    yield from pending.values()


def cmd_socket_writes(*logs):
    first, counts = None, {}
    for path in logs:
        try:
            for call, text in strace_calls(path):
                if call not in SOCKET_CALLS:
                    continue
                found = unsafe_write(call, split_args(text))
                if found:
                    counts[found[0]] = counts.get(found[0], 0) + 1
                    first = first or found
        except OSError as e:
            sys.exit("proctool: " + _("cannot read the strace log {path}: {error}").format(path=path, error=e.strerror or e))
    if first:
        what, advice = first
        n = counts[what]
        # TRANSLATORS: {what} is "write() on a TCP socket" or "send() without MSG_NOSIGNAL", {n} how
        # many such calls the server made, {advice} how to make them safe.
        print(ngettext("{what} ({n:,} such call): {advice}", "{what} ({n:,} such calls): {advice}", n).format(
            what=what, n=n, advice=advice))


COMMANDS = {  # name: (function, number of arguments; None: one or more)
    "pids": (cmd_pids, 1), "fds": (cmd_fds, 1), "zombies": (cmd_zombies, 1),
    "threads": (cmd_threads, 1), "rss": (cmd_rss, 1), "maps": (cmd_maps, 1), "children": (cmd_children, 1),
    "cpu": (cmd_cpu, 2), "peak": (cmd_peak, 4), "ready": (cmd_ready, 3),
    "sigpipe": (cmd_sigpipe, 1), "socket-writes": (cmd_socket_writes, None),
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    fn, nargs = COMMANDS[sys.argv[1]]
    args = sys.argv[2:]
    if nargs is None:  # socket-writes LOG...: file names, not ids
        if not args:
            sys.exit(__doc__)
        fn(*args)
        return
    if len(args) != nargs:
        sys.exit(__doc__)
    # The scope or process id: the first argument; the second for peak and ready.
    first = 1 if sys.argv[1] in ("peak", "ready") else 0
    if sys.argv[1] in ("ready", "children") or (sys.argv[1] == "threads" and args[0].isdigit()):
        if not args[first].isdigit():
            sys.exit(__doc__)
        args[first] = int(args[first])
    else:
        args[first] = parse_scope(args[first])
    fn(*args)


if __name__ == "__main__":
    main()
