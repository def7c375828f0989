#!/usr/bin/env python3
"""harness/bench/course.py — write the benchmark's figures into COURSE.md (`make course-numbers`).

COURSE.md quotes the committed reference run (harness/bench/reference/results.json) between marker
lines, never by hand:

    <!-- bench: NAME (written by harness/bench/course.py from harness/bench/reference) -->
    ...
    <!-- end bench: NAME -->

    harness/bench/course.py           rewrite every marked region from the reference run
    harness/bench/course.py --check   change nothing; exit 1 naming each region that is stale
    harness/bench/course.py --from DIR    use DIR/results.json instead (to preview a run of your own)
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import report  # noqa: E402
from report import NAMES, n, ratio  # noqa: E402

REGION = re.compile(r"^<!-- bench: (?P<name>[\w-]+) .*?-->\n(?P<body>.*?)^<!-- end bench: (?P=name) -->$", re.M | re.S)


def ms(us):
    return f"{us / 1000:,.2f} ms" if us >= 1000 else f"{us:,.0f} µs"


def pp(f, ch, c):
    return f["pingpong"].get((ch, c))


def at_most(f, ch):
    counts = sorted(c for h, c in f["pingpong"] if h == ch)
    return counts[-1] if counts else None


def pingpong_line(f, ch):
    c = at_most(f, ch)
    x = pp(f, ch, c) if c else None
    if not x:
        return ""
    return (f"ping-pong at {c:,} connection{'s' if c > 1 else ''}: {n(x['msgs_per_s'])} messages/s, p99 "
            f"{ms(x['p99_us'])}, {n(x['server_cpu_s_per_100k'], 2)} s of server CPU per 100,000 messages")


def region_01(f, doc):
    t = f["timeline"].get("01")
    lines = [f"- {pingpong_line(f, '01')} (the load generator used {n(pp(f, '01', 1)['loadgen_cpu_share'] * 100)} % "
             "of a core: with one client, both sides mostly wait for each other)." if pp(f, "01", 1) else None]
    cn = f["connect"]
    if all(ch in cn for ch in ("01", "02", "03", "07")):
        lines.append(f"- Connect, request, close: {n(cn['01']['conns_per_s'])} connections/s and "
                     f"{n(cn['01']['server_cpu_s_per_1k_conns'] * 1000)} ms of server CPU per 1,000 connections ("
                     + ", ".join(f"{ch}: {n(cn[ch]['conns_per_s'])}/s, {n(cn[ch]['server_cpu_s_per_1k_conns'] * 1000)} ms"
                                 for ch in ("02", "03", "07")) + ").")
    if t:
        lines.append(f"- {t['clients']} clients connecting at once, 1 s sessions: the last is served at "
                     f"{t['last_echo_s']:.1f} s, a staircase ([timeline](harness/bench/reference/timeline-01.png)).")
    return lines


def region_02(f, doc):
    cr, mem, cn = f["create"], f["memory"].get(("02", 1000)), f["connect"]
    lines = []
    if "fork_exit_wait" in cr:
        a, b = cr["fork_exit_wait"], cr.get("fork_64mib")
        lines.append(f"- Creating and reaping a process: {ms(a['median_us'])} (median of {a['n']:,}); the text says "
                     f"\"~1-2 ms\"." + (f" From a parent that has written 64 MiB: {ms(b['median_us'])} — fork copies "
                                        "the page tables, so its cost grows with the parent's memory." if b else ""))
    if mem:
        lines.append(f"- Memory: {n(mem['pss_per_conn_kib'], 1)} KiB per connection in user space (PSS of the whole "
                     f"tree, {mem['processes']:,} processes for {mem['clients']:,} clients; RSS would count "
                     f"{n(mem['rss_per_conn_kib'], 1)} KiB, the shared pages once per process)" + kernel_share(mem) + ".")
    if "02" in cn and "03" in cn:
        lines.append(f"- Connect, request, close: {n(cn['02']['conns_per_s'])} connections/s and "
                     f"{n(cn['02']['server_cpu_s_per_1k_conns'] * 1000)} ms of server CPU per 1,000 connections "
                     f"(03: {n(cn['03']['conns_per_s'])}/s, {n(cn['03']['server_cpu_s_per_1k_conns'] * 1000)} ms).")
    x = pp(f, "02", 1000)
    if x:
        lines.append(f"- {degrades(f, '02', 1000)}")
    x = pp(f, "02", 10000)
    if x:
        lines.append(f"- {pingpong_line(f, '02')}" + (
            f"; {x['refused']:,} connections refused over the runs: 02 keeps at most 1,024 children, its guard "
            "against a fork bomb, and turns the rest away" if x["refused"] else "") + ".")
    return lines


def degrades(f, ch, c):
    """The text's ❌ for ch at c clients, read as it means it: not failing, but the worst of its row."""
    x = pp(f, ch, c)
    row = {h: y for (h, k), y in f["pingpong"].items() if k == c and h in ("02", "03", "04", "05", "06", "07", "08")}
    best = max(row, key=lambda h: row[h]["msgs_per_s"])
    failed = x["timeouts"] + x["refused"] + x["bytes_wrong"]
    worst = min(row, key=lambda h: row[h]["msgs_per_s"]) == ch
    return (f"Ping-pong at {c:,} connections: {n(x['msgs_per_s'])} messages/s, p99 {ms(x['p99_us'])}, "
            f"{n(x['server_cpu_s_per_100k'], 2)} s of CPU per 100,000 messages, against {NAMES[best]}'s "
            f"{n(row[best]['msgs_per_s'])}/s and p99 {ms(row[best]['p99_us'])}: "
            + ("connections failed." if failed else
               f"every connection served, {'the worst' if worst else 'not the worst'} cell of the row. The text's ❌ "
               f"means \"not suited\", not \"fails\", and in that sense it {'holds' if worst else 'does not hold'}."))


def kernel_share(m):
    """', and in the kernel ...': what PSS does not count, from /proc/meminfo (harness/bench/run)."""
    ks, pt, slab = (m.get(f"{k}_per_conn_kib") for k in ("KernelStack", "PageTables", "SUnreclaim"))
    if ks is None or pt is None:
        return ""
    return (f"; the kernel's share, which PSS does not count: {n(ks, 1)} KiB of kernel stack and {n(pt, 1)} KiB of "
            f"page tables per connection" + (f", and {n(slab, 1)} KiB of kernel objects (slab: both ends' sockets, "
                                             "and each task's own structures)" if slab is not None else ""))


def region_03(f, doc):
    cr, mem = f["create"], f["memory"].get(("03", 1000))
    lines = []
    if "thread_create_join" in cr and "fork_exit_wait" in cr:
        t, p = cr["thread_create_join"], cr["fork_exit_wait"]
        lines.append(f"- Creating and joining a thread: {ms(t['median_us'])} (the text: \"~10-100 µs\"), "
                     f"{ratio(p['median_us'], t['median_us']):.0f}× less than a process.")
    if mem:
        lines.append(f"- Memory: {n(mem['pss_per_conn_kib'], 1)} KiB per connection in user space: the pages of its "
                     "256 KiB stack that a thread touches, not the 256 KiB it reserves (03 sets that size; the default, "
                     "8 MiB, is RLIMIT_STACK's)" + kernel_share(mem) + ".")
    if pingpong_line(f, "03"):
        lines.append(f"- {pingpong_line(f, '03')}.")
    s = switches_line(f, ("03", "07"), 1000)
    if s:
        lines.append(f"- Context switches per message at 1,000 connections (voluntary + involuntary): {s}.")
    return lines


def switches_line(f, chs, c):
    parts = []
    for ch in chs:
        x = pp(f, ch, c)
        if x and x.get("voluntary_switches_per_msg") is not None:
            parts.append(f"{ch} {x['voluntary_switches_per_msg']:.2f} + {x['involuntary_switches_per_msg']:.2f}")
    return ", ".join(parts) if len(parts) == len(chs) else ""


def region_04(f, doc):
    cn, t = f["connect"], f["timeline"].get("04")
    lines = []
    if "04" in cn:
        others = ", ".join(f"{ch}: {n(cn[ch]['conns_per_s'])}" for ch in ("02", "03", "07") if ch in cn)
        lines.append(f"- Connect, request, close with 8 workers: {n(cn['04']['conns_per_s'])} connections/s, "
                     f"{n(cn['04']['server_cpu_s_per_1k_conns'] * 1000)} ms of server CPU per 1,000 ({others}).")
    if t:
        lines.append(f"- {t['clients']} clients at once against `-w 4`: served four at a time, the last at "
                     f"{t['last_echo_s']:.1f} s ([timeline](harness/bench/reference/timeline-04.png)).")
    m = f["memory"].get(("04", 1000))
    if m and "accepted" in m:
        lines.append(f"- Memory with 1,000 clients and 8 workers: the server accepted {m['accepted']:,} of them (8 "
                     f"served, the rest queued in its ring) at {n(m['pss_per_conn_kib'], 2)} KiB each; the other "
                     f"{1000 - m['accepted']:,} wait in the kernel's backlog, accepted by nobody, and cost only the "
                     "kernel's slab: a queued client costs a queue slot, not a thread.")
    return lines


def instr_line(f, ch):
    ins = sorted((c, v) for (h, c), v in f["instructions"].items() if h == ch)
    if len(ins) < 2:
        return ""
    return ", ".join(f"{v:,.0f} at {c:,}" for c, v in ins) + f" (×{ins[-1][1] / ins[0][1]:.2f})"


def region_05(f, doc):
    lines = []
    if instr_line(f, "05"):
        lines.append(f"- User-space instructions per message, 100 busy connections and the rest idle: {instr_line(f, '05')}: "
                     "the loop tests every descriptor up to the highest after each select().")
    ib = f["idlebusy"]
    a, b = pp(f, "05", 100), pp(f, "07", 100)
    if a and b and ("05", 100) in ib and ("07", 100) in ib:
        c5, c7 = ib[("05", 100)]["server_cpu_us_per_msg"], ib[("07", 100)]["server_cpu_us_per_msg"]
        r1, r2 = ratio(a["server_cpu_s_per_100k"], b["server_cpu_s_per_100k"]), ratio(c5, c7)
        close = all(0.8 <= r <= 1.25 for r in (r1, r2))
        lines.append(f"- \"100 clients: select() ≈ epoll()\", two ways. 100 connections all busy (ping-pong): "
                     f"{n(a['msgs_per_s'])} messages/s against 07's {n(b['msgs_per_s'])}, and {r1:.2f}× 07's CPU per "
                     f"message. 100 busy beside 100 idle: {n(ib[('05', 100)]['msgs_per_s'])} against "
                     f"{n(ib[('07', 100)]['msgs_per_s'])}, {r2:.2f}× the CPU per message. "
                     + ("Within a quarter either way, in both: at 100, select() ≈ epoll() holds; between runs "
                        "the ratio moves by more than the difference (an earlier run had select() 36% dearer in "
                        "ping-pong)." if close else
                        "Not equal: what select() costs more is its scan, in the kernel and in the loop."))
    lines.append("- Not run at 10,000 (nor 1,000 idle + 100 busy): no descriptor at or above FD_SETSIZE (1,024) fits in an fd_set.")
    return lines


def region_06(f, doc):
    lines = []
    if instr_line(f, "06"):
        lines.append(f"- User-space instructions per message: {instr_line(f, '06')}: the loop walks the whole array, "
                     "and the kernel polls every entry on every call (its share is not in this count).")
    ib = f["idlebusy"]
    big = max((i for h, i in ib if h == "06"), default=None)
    if big and ("07", big) in ib:
        p, e = ib[("06", big)], ib[("07", big)]
        lines.append(f"- 100 busy beside {big:,} idle: {n(p['msgs_per_s'])} messages/s and {n(p['server_cpu_us_per_msg'], 1)} µs "
                     f"of server CPU per message, against 07's {n(e['msgs_per_s'])} and {n(e['server_cpu_us_per_msg'], 1)} µs.")
    return lines


def region_07(f, doc):
    lines = []
    s, se, p = f["syscalls"].get(("07", "strace")), f["syscalls"].get(("07e", "strace")), f["syscalls"].get(("07", "perf"))
    if s:
        lines.append(f"- System calls per echoed message: {s['per_msg']:.2f} level-triggered, "
                     + (f"{se['per_msg']:.2f} with `-e` " if se else "")
                     + f"(strace: a busy server, where one epoll_wait() serves many messages)"
                     + (f"; {p['per_msg']:.2f} at full speed (perf), where the server, faster than its client, "
                        "wakes up for a few messages at a time" if p else "") + ".")
    if instr_line(f, "07"):
        lines.append(f"- User-space instructions per message: {instr_line(f, '07')}: flat, where 05 and 06 grow.")
    m = f["memory"].get(("07", 10000))
    if m:
        slab = m.get("SUnreclaim_per_conn_kib")
        lines.append(f"- Memory: {n(m['pss_per_conn_kib'], 2)} KiB per idle connection with 10,000 held (a struct "
                     "conn; the output buffer exists only while output is pending). An idle socket holds no buffer; "
                     "what this leaves out is the kernel's own memory per connection, its slab objects ("
                     + (f"{n(slab, 1)} KiB for both ends of a connection, from /proc/meminfo" if slab is not None else
                        "about 3.6 KiB a socket on this kernel, from /proc/slabinfo") + ").")
    k = f["peer_clients"]
    if f["07_vs_node"] or f["07_vs_asyncio"]:
        lines.append(f"- At {k:,} busy connections: " + "; ".join(
            f"{ratio_txt(f, '07', peer)} {NAMES[peer]}'s messages/s" for peer in ("node", "asyncio") if f[f"07_vs_{peer}"]) + ".")
    nd, e = pp(f, "node", 1000), pp(f, "07", 1000)
    if nd and e:
        lower = nd["p99_us"] < e["p99_us"]
        lines.append(f"- At 1,000 connections Node.js echoes {n(nd['msgs_per_s'])} messages/s against 07's "
                     f"{n(e['msgs_per_s'])}, with a p99 of {ms(nd['p99_us'])} against {ms(e['p99_us'])}: "
                     + ("fewer messages a second, spread more evenly over the connections (a lower p99 is "
                        "what a user of the slowest connection sees)." if lower else
                        "07 is ahead on both counts in this run (an earlier run had Node.js's p99 the lower: "
                        "the two are close, and the machine's other work decides)."))
    if pingpong_line(f, "07"):
        lines.append(f"- {pingpong_line(f, '07')}.")
    return lines


def ratio_txt(f, ch, peer):
    return f"{f[f'{ch}_vs_{peer}']:.2f}×"


def region_08(f, doc):
    lines = []
    a, b = pp(f, "08", at_most(f, "08") or 0), pp(f, "07", at_most(f, "07") or 0)
    if a and b:
        lines.append(f"- {pingpong_line(f, '08')}; 07 alone: {n(b['msgs_per_s'])}. On two cores the load generator "
                     "takes one, so a second worker has little to gain here: the hybrid pays off with cores to spare.")
    s = f["syscalls"].get(("08", "strace"))
    if s:
        lines.append(f"- System calls per echoed message: {s['per_msg']:.2f} (strace, every worker followed).")
    return lines


def verdict(ok):
    return "holds" if ok else "does not hold"


def region_summary(f, doc):
    """'What the measurements say': the text's claims, one by one."""
    m = doc["machine"]
    L = [f"Measured by `make bench` on {m['cores']} cores ({m['cpu']}, Linux {m['kernel']}), {m['date']}; "
         "the full tables and plots are in [harness/bench/reference/results.md](harness/bench/reference/results.md). "
         "Absolute figures change from machine to machine; ratios much less.", ""]
    cr = f["create"]
    if "fork_exit_wait" in cr and "thread_create_join" in cr:
        p, t = cr["fork_exit_wait"]["median_us"], cr["thread_create_join"]["median_us"]
        L.append(f"- **\"Coût création: processus ~1-2 ms, thread ~10-100 µs\".** A process: {ms(p)}; a thread: {ms(t)}. "
                 f"The thread's figure {verdict(10 <= t <= 100)}; the process is {'cheaper' if p < 1000 else 'dearer'} than "
                 "the text says, unless the parent is big (fork copies page tables: "
                 + (f"{ms(cr['fork_64mib']['median_us'])} with 64 MiB written)." if "fork_64mib" in cr else "see 02)."))
    ppf = f["pingpong"]
    checks = []
    for ch, c, text in (("02", 1000, "fork ❌ at 1,000"), ("03", 1000, "threads ✅✅ at 1,000"),
                        ("06", 10000, "poll ❌ at 10,000")):
        x = ppf.get((ch, c))
        if x:
            ok = x["timeouts"] == 0 and x["refused"] == 0 and x["bytes_wrong"] == 0
            rank = sorted((y["msgs_per_s"], h) for (h, k), y in ppf.items() if k == c and h not in ("node", "asyncio"))
            place = [h for _, h in rank].index(ch) + 1
            checks.append(f"{text}: {NAMES[ch]} served {c:,} connections at {n(x['msgs_per_s'])} messages/s, "
                          f"p99 {ms(x['p99_us'])}{'' if ok else ' (with failures)'}, "
                          f"{'the slowest' if place == 1 else f'number {place} from the slowest'} of {len(rank)} servers")
    if checks:
        L.append("- **\"Performance selon le nombre de clients\".** " + "; ".join(checks) + ". Read as \"fails\", "
                 "the ❌ cells would not hold: every connection was served, every byte right. Read as the text means "
                 "them, \"degrades, not suited\", fork's holds (the slowest at 1,000, and the dearest in memory); "
                 "poll's holds when most connections are idle, where its CPU per message grows with them (the "
                 "idle + busy sweep below), not when every connection is busy. 100,000 clients were not tried: "
                 f"one process may hold {m['nofile']:,} descriptors here.")
    sw = switches_line(f, ("02", "03", "04", "05", "06", "07"), 1000)
    if sw:
        L.append("- **Event loops avoid \"context switching\".** Context switches per message at 1,000 busy "
                 f"connections, voluntary + involuntary: {sw}. A system call is a mode switch, not a context "
                 "switch: the loop still blocks in its wait when nothing is ready, but once per batch of messages, "
                 "where a thread or a process per client blocks once per message.")
    ib = f["idlebusy"]
    big = max((i for h, i in ib if h == "06"), default=None)
    if big and ("07", big) in ib and ("06", big) in ib:
        r = ratio(ib[("06", big)]["server_cpu_us_per_msg"], ib[("07", big)]["server_cpu_us_per_msg"])
        rt = ratio(ib[("07", big)]["msgs_per_s"], ib[("06", big)]["msgs_per_s"])
        sweep = sorted(i for h, i in ib if h == "06" and ("07", i) in ib)
        growth = ", ".join(f"{ratio(ib[('06', i)]['server_cpu_us_per_msg'], ib[('07', i)]['server_cpu_us_per_msg']):.1f}× "
                           f"at {i // 100}:1" for i in sweep)
        L.append(f"- **\"10 000 clients: epoll() 100x plus rapide\".** With 100 busy beside {big:,} idle, poll uses "
                 f"{r:.1f}× epoll's CPU per message and epoll echoes {rt:.1f}× as many messages per second: the "
                 f"direction holds, the factor 100 {'holds' if r >= 100 else 'does not'} here. The factor is not a "
                 f"constant of the two calls: it grows with the share of idle connections, which poll walks and "
                 f"epoll never sees (poll's CPU per message over epoll's, idle to busy: {growth}).")
    g5, g6, g7 = f["instr_growth_05"], f["instr_growth_06"], f["instr_growth_07"]
    if g7 and g6:
        L.append(f"- **\"select() et poll() O(n), epoll() O(1)\".** User-space instructions per message from "
                 f"{f['instr_counts_07'][0]:,} to {f['instr_counts_07'][-1]:,} connections: 07 ×{g7:.2f}, 06 ×{g6:.2f}"
                 + (f", 05 ×{g5:.2f} (to {f['instr_counts_05'][-1]:,})" if g5 else "") + f": {verdict(g7 < 1.2 < g6)}.")
    mem = f["memory"]
    if ("02", 1000) in mem and ("03", 1000) in mem and ("07", 10000) in mem:
        def both(key, digits):
            m = mem[key]
            k = m.get("KernelStack_per_conn_kib")
            return (f"{n(m['pss_per_conn_kib'], digits)} KiB" + (f" + {n(k + m['PageTables_per_conn_kib'], 1)} KiB in "
                                                                  "the kernel" if k is not None else ""))
        L.append(f"- **\"Mémoire: fork élevée, threads moyenne, epoll faible\".** Per connection, user space (PSS) "
                 f"and the kernel's stacks and page tables, which PSS leaves out: 02 {both(('02', 1000), 1)}, 03 "
                 f"{both(('03', 1000), 1)}, 07 {both(('07', 10000), 2)}: holds, and the kernel's share widens "
                 "the gap: a process's page tables are its largest cost.")
    cn = f["connect"]
    if all(ch in cn for ch in ("02", "03", "04", "07")):
        cpu = {ch: cn[ch]["server_cpu_s_per_1k_conns"] for ch in ("02", "03", "04", "07")}
        L.append("- **\"CPU: fork élevé, threads moyen, epoll faible\"**, for short connections (server CPU per "
                 "1,000 connections): " + ", ".join(f"{ch} {n(cpu[ch] * 1000)} ms" for ch in cpu)
                 + f": {verdict(cpu['02'] > cpu['03'] > cpu['07'])}; a process per connection costs "
                 f"{ratio(cpu['02'], cpu['07']):.1f}× the event loop's CPU, a thread {ratio(cpu['03'], cpu['07']):.1f}×, "
                 f"a pool of threads made in advance {ratio(cpu['04'], cpu['07']):.1f}×.")
    k = f["peer_clients"]
    if f["07_vs_node"] and f["07_vs_asyncio"]:
        L.append(f"- **Against the event loops people use**, at {k:,} busy connections: 07 echoes {f['07_vs_node']:.2f}× "
                 f"the messages of Node.js and {f['07_vs_asyncio']:.2f}× those of Python asyncio; per message, Node.js "
                 f"spends {f['07_cpu_vs_node']:.1f}× 07's server CPU and asyncio {f['07_cpu_vs_asyncio']:.1f}×. With "
                 "one core for the server and one for the load generator, the fastest servers are held back by the "
                 "client: the CPU ratio is the fairer one.")
    return L


MODELS = (("02", "Fork"), ("03", "Threads"), ("05", "select"), ("06", "poll"), ("07", "epoll"))


def region_tables(f, doc):
    """The text's two comparison tables, with the reference run's figures in their cells."""
    ppf, nofile = f["pingpong"], doc["machine"]["nofile"]
    L = ["*Performance selon le nombre de clients*, measured: messages per second in ping-pong (one "
         "64-byte message in flight per connection; the load generator on the other core).", "",
         "| clients | " + " | ".join(f"{name} ({ch})" for ch, name in MODELS) + " |",
         "|---|" + "---|" * len(MODELS)]
    for c in (10, 100, 1000, 10000, 100000):
        cells = []
        for ch, _ in MODELS:
            x = ppf.get((ch, c))
            if x:
                bad = x["timeouts"] + x["refused"] + x["bytes_wrong"]
                cells.append(n(x["msgs_per_s"]) + (f" ⚠ {bad:,} failed" if bad else ""))
            elif c == 100000:
                cells.append("not run")
            elif ch == "05" and c > 1000:
                cells.append("impossible (FD_SETSIZE)")
            else:
                cells.append("not run")
        L.append(f"| {c:,} | " + " | ".join(cells) + " |")
    x = ppf.get(("02", 10000))
    L += ["", (f"At 10,000, 02's failures are its own refusals: it keeps at most 1,024 children (a guard "
               "against a fork bomb) and turns the rest away. " if x and x["refused"] else "")
          + f"Not run: 100,000 anywhere (one process may hold {nofile:,} descriptors here, and one source "
          "address has some 28,000 ports towards one server port).", ""]
    mem, cn = f["memory"], f["connect"]

    def memory(ch):
        m = [x for (h, _), x in mem.items() if h == ch]
        if m:
            return f"{n(m[0]['pss_per_conn_kib'], 2 if m[0]['pss_per_conn_kib'] < 1 else 1)} KiB"
        return "as 07 (the same connection buffers)" if ch in ("05", "06") else "–"

    def kernel(ch):
        m = [x for (h, _), x in mem.items() if h == ch]
        if m and m[0].get("KernelStack_per_conn_kib") is not None:
            return f"{n(m[0]['KernelStack_per_conn_kib'] + m[0]['PageTables_per_conn_kib'], 1)} KiB"
        return "as 07" if ch in ("05", "06") else "–"

    def switches(ch):
        x = ppf.get((ch, 1000))
        if x and x.get("voluntary_switches_per_msg") is not None:
            return f"{x['voluntary_switches_per_msg'] + x['involuntary_switches_per_msg']:.2f}"
        return "–"

    def most(ch):
        ok = [c for (h, c), x in ppf.items() if h == ch and not (x["timeouts"] or x["refused"] or x["bytes_wrong"])]
        return f"{max(ok):,} served" if ok else "–"

    def cpu_msg(ch):
        x = ppf.get((ch, 1000))
        return f"{n(x['server_cpu_s_per_100k'], 2)} s" if x else "–"

    def cpu_conn(ch):
        x = cn.get(ch)
        return f"{n(x['server_cpu_s_per_1k_conns'] * 1000)} ms" if x else "–"
    L += ["*Tableau Récapitulatif*, the rows that can be measured:", "",
          "| | " + " | ".join(f"{name} ({ch})" for ch, name in MODELS) + " |",
          "|---|" + "---|" * len(MODELS),
          "| Scalability: most ping-pong connections measured | " + " | ".join(most(ch) for ch, _ in MODELS) + " |",
          "| Memory per idle connection (PSS) | " + " | ".join(memory(ch) for ch, _ in MODELS) + " |",
          "| Kernel stacks and page tables per idle connection | " + " | ".join(kernel(ch) for ch, _ in MODELS) + " |",
          "| Context switches per message at 1,000 connections | " + " | ".join(switches(ch) for ch, _ in MODELS) + " |",
          "| CPU per 100,000 messages at 1,000 connections | " + " | ".join(cpu_msg(ch) for ch, _ in MODELS) + " |",
          "| CPU per 1,000 short connections | " + " | ".join(cpu_conn(ch) for ch, _ in MODELS) + " |"]
    return L


TREE = ((10, "< 50 clients", "fork() (simplicité)", ("02",)),
        (100, "50-500 clients", "threads or poll()", ("03", "06")),
        (1000, "500-10 000 clients", "epoll() or a pool of threads", ("07", "04")),
        (10000, "> 10 000 clients", "epoll() and an event-driven design", ("07",)))


def region_tree(f, doc):
    """The text's decision tree, its thresholds measured (ping-pong at one point of each branch)."""
    L = ["| the text's branch | measured at | its choice | messages/s (p99) | the fastest there | messages/s (p99) |",
         "|---|---|---|---|---|---|"]
    shares, bests = [], []
    for c, branch, choice, chs in TREE:
        row = {h: x for (h, k), x in f["pingpong"].items() if k == c and h in NAMES and h not in ("node", "asyncio")}
        if not row:
            continue
        best = max(row, key=lambda h: row[h]["msgs_per_s"])
        picked = "; ".join(f"{ch}: {n(row[ch]['msgs_per_s'])} ({ms(row[ch]['p99_us'])})" for ch in chs if ch in row) or "not run"
        L.append(f"| {branch} | {c:,} | {choice} | {picked} | {NAMES[best]} | {n(row[best]['msgs_per_s'])} "
                 f"({ms(row[best]['p99_us'])}) |")
        bests.append(best)
        top = max((row[ch]["msgs_per_s"] for ch in chs if ch in row), default=0)
        shares.append(f"{100 * top / row[best]['msgs_per_s']:.0f}% at {c:,}")
    loops_lead = all(b in ("05", "06", "07", "08") for b in bests)
    L += ["", "The text's best choice in each branch reaches, of the fastest server's messages per second: "
          + ", ".join(shares) + "." + (" An event loop is the fastest at every size measured, so the "
                                       "thresholds are not cut-offs where speed changes hands: below 50 the text "
                                       "picks fork for its simplicity, not its speed, which is a fair reason when "
                                       "isolation matters (next list)." if loops_lead else "")]
    return L


REGIONS = {"tree": region_tree, "tables": region_tables, "01": region_01, "02": region_02, "03": region_03, "04": region_04, "05": region_05, "06": region_06,
           "07": region_07, "08": region_08, "summary": region_summary}


def render(doc):
    f = report.figures(doc)
    # None: a figure not measured, left out; "": a blank line (between a paragraph and a table).
    return {name: "\n".join(x for x in fn(f, doc) if x is not None).strip("\n") + "\n" for name, fn in REGIONS.items()}


def main(argv):
    check = "--check" in argv
    src = os.path.join(HERE, "reference")
    if "--from" in argv:
        src = argv[argv.index("--from") + 1]
    if any(a not in ("--check", "--from", src) for a in argv):
        sys.exit(__doc__)
    with open(os.path.join(src, "results.json")) as fh:
        doc = json.load(fh)
    bodies = render(doc)
    path = os.path.join(ROOT, "COURSE.md")
    text = open(path).read()
    seen, stale = set(), []

    def fill(m):
        name = m.group("name")
        seen.add(name)
        if name not in bodies:
            sys.exit(f"course.py: COURSE.md has a region '{name}' that nothing writes")
        if m.group("body") != bodies[name]:
            stale.append(name)
        start, end = m.start("body") - m.start(), m.end("body") - m.start()
        return m.group(0)[:start] + bodies[name] + m.group(0)[end:]

    new = REGION.sub(fill, text)
    missing = sorted(set(bodies) - seen)
    if missing:
        print(f"course.py: COURSE.md has no region for {', '.join(missing)}", file=sys.stderr)
        return 1
    if check:
        if stale:
            print(f"course.py: COURSE.md's figures are stale in {', '.join(stale)}: run harness/bench/course.py",
                  file=sys.stderr)
            return 1
        return 0
    if new != text:
        with open(path, "w") as fh:
            fh.write(new)
        print(f"course.py: rewrote {', '.join(stale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
