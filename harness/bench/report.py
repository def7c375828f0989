"""harness/bench/report.py — what harness/bench/run writes: results.json, results.csv, results.md
and the gnuplot plots; also the figures COURSE.md quotes (figures(), used by course.py).

    python3 harness/bench/report.py DIR     rewrite DIR's results.md, results.csv and plots from
                                            DIR/results.json (after editing this file)
"""

import csv
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = {"01": "01-iterative", "02": "02-fork", "03": "03-threads", "04": "04-threadpool",
         "05": "05-select", "06": "06-poll", "07": "07-epoll", "07e": "07-epoll -e", "08": "08-reuseport-hybrid",
         "08e": "08-reuseport-hybrid -e", "node": "Node.js net", "asyncio": "Python asyncio"}
ORDER = list(NAMES)
KEYS = ["workload", "chapter", "clients", "idle", "tool", "what", "label", "runs"]


def cells(doc, workload, **match):
    return [c for c in doc["cells"] if c["workload"] == workload and all(c.get(k) == v for k, v in match.items())]


def one(doc, workload, **match):
    found = cells(doc, workload, **match)
    return found[0] if found else None


def n(x, digits=0):
    """A figure for a table: thousands separated, '–' when missing."""
    if x is None:
        return "–"
    if isinstance(x, float) and digits:
        return f"{x:,.{digits}f}"
    return f"{round(x):,}"


def failures(x):
    """' ⚠ 512 timed out' when a cell's connections failed (summed over its runs), else ''."""
    bad = [f"{x[k]:,} {w}" for k, w in (("refused", "refused"), ("timeouts", "timed out"), ("bytes_wrong", "bytes wrong"))
           if x.get(k)]
    return " ⚠ " + ", ".join(bad) if bad else ""


def ratio(a, b):
    return a / b if a and b else None


# ----------------------------------------------------------------------------------------------
# The figures COURSE.md quotes and the targets of issue 11, computed once from a results.json.

def figures(doc):
    f = {}
    pp = {(c["chapter"], c["clients"]): c for c in cells(doc, "pingpong")}
    f["pingpong"] = pp
    at = max([c for ch, c in pp if ch == "07"] or [0])
    f["peer_clients"] = 1000 if ("07", 1000) in pp else at
    k = f["peer_clients"]
    for peer in ("node", "asyncio"):
        for ch in ("07", "08"):
            f[f"{ch}_vs_{peer}"] = ratio(pp.get((ch, k), {}).get("msgs_per_s"), pp.get((peer, k), {}).get("msgs_per_s"))
            # The same comparison in server CPU per message: what the peer spends for 07's one.
            f[f"{ch}_cpu_vs_{peer}"] = ratio(pp.get((peer, k), {}).get("server_cpu_s_per_100k"),
                                             pp.get((ch, k), {}).get("server_cpu_s_per_100k"))
    sc = {(c["chapter"], c["tool"]): c for c in cells(doc, "syscalls")}
    f["syscalls"] = sc
    ins = {(c["chapter"], c["clients"]): c["per_msg"] for c in cells(doc, "instructions")}
    f["instructions"] = ins

    def growth(ch):
        counts = sorted(c for h, c in ins if h == ch)
        return ratio(ins[(ch, counts[-1])], ins[(ch, counts[0])]) if len(counts) > 1 else None, counts
    for ch in ("05", "06", "07"):
        f[f"instr_growth_{ch}"], f[f"instr_counts_{ch}"] = growth(ch)
    mem = {(c["chapter"], c["clients"]): c for c in cells(doc, "memory")}
    f["memory"] = mem
    cr = {c["what"]: c for c in cells(doc, "create")}
    f["create"] = cr
    f["connect"] = {c["chapter"]: c for c in cells(doc, "connect")}
    f["idlebusy"] = {(c["chapter"], c["idle"]): c for c in cells(doc, "idlebusy")}
    f["timeline"] = {c["chapter"]: c for c in cells(doc, "timeline")}
    return f


def targets(doc):
    """(target, measured, met: True/False/None when not measured) for issue 11's targets."""
    f = figures(doc)
    out = []
    k = f["peer_clients"]
    for peer, want in (("node", 1.8), ("asyncio", 4.0)):
        r = f[f"07_vs_{peer}"]
        c = f[f"07_cpu_vs_{peer}"]
        out.append((f"07 at {k:,} busy connections ≥ {want}× {NAMES[peer]}'s messages/s",
                    (f"{r:.2f}× (server CPU per message: {NAMES[peer]} spends {c:.1f}× 07's)" if c else f"{r:.2f}×")
                    if r else "not measured (--peers)", r >= want if r else None))
    for ch, label in (("07", "level-triggered"), ("07e", "edge-triggered (-e)")):
        s = f["syscalls"].get((ch, "strace"))
        p = f["syscalls"].get((ch, "perf")) if ch == "07" else None
        txt = f"{s['per_msg']:.2f} (strace)" if s else "not measured"
        if p:
            txt += f"; {p['per_msg']:.2f} under load (perf)"
        out.append((f"07 {label}: ≤ 2.1 system calls per echoed message", txt, s["per_msg"] <= 2.1 if s else None))
    g7, c7 = f["instr_growth_07"], f["instr_counts_07"]
    grow = ", ".join(f"{ch} ×{f[f'instr_growth_{ch}']:.2f}" for ch in ("05", "06") if f[f"instr_growth_{ch}"])
    out.append(("07's user-space instructions per message within 1.2× from 100 to 5,000 connections (idle + busy), "
                "while 05 and 06 grow",
                f"07 ×{g7:.2f} ({c7[0]:,} → {c7[-1]:,}); {grow}" if g7 else "not measured",
                (g7 <= 1.2 and all((f[f"instr_growth_{ch}"] or 0) > 1.2 for ch in ("05", "06"))) if g7 else None))
    m = f["memory"].get(("07", 10000))
    out.append(("07: ≤ 1 KiB of server memory per idle connection at 10,000",
                f"{m['pss_per_conn_kib']:.2f} KiB (PSS; RSS {m['rss_per_conn_kib']:.2f} KiB)" if m else "not measured",
                m["pss_per_conn_kib"] <= 1.0 if m else None))
    return out


# ----------------------------------------------------------------------------------------------

def write_csv(doc, path):
    rows = [dict(c) for c in doc["cells"]]
    keys = [k for k in KEYS if any(k in r for r in rows)]
    keys += sorted({k for r in rows for k in r} - set(keys))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()})


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def write_md(doc, path):
    f = figures(doc)
    m = doc["machine"]
    a = doc["args"]
    L = [f"# Benchmark results ({m['date']})", "",
         f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Linux {m['kernel']}; {m['cc']}; "
         f"Python {m['python']}" + (f"; Node.js {m['node']}" if m.get("node") else "") + f"; descriptor limit {m['nofile']:,}.",
         f"Run: {a['runs']} run(s) of {a['duration']:g} s per cell, median reported; {doc['elapsed_s'] / 60:.1f} minutes "
         f"in all. Server and load generator share the machine's {m['cores']} cores.", ""]

    pp = f["pingpong"]
    if pp:
        counts = sorted({c for _, c in pp})
        chs = [ch for ch in ORDER if any(h == ch for h, _ in pp)]
        L += ["## Ping-pong: messages per second (p99 round trip)", "",
              "One 64-byte message in flight per connection. The text's table \"Performance selon le nombre "
              "de clients\", measured (01 runs with one connection; a dash: not run, see the end).", ""]
        rows = []
        for ch in chs:
            rows.append([NAMES[ch]] + [f"{n(pp[(ch, c)]['msgs_per_s'])} ({n(pp[(ch, c)]['p99_us'] / 1000, 1)} ms)"
                                       + failures(pp[(ch, c)]) if (ch, c) in pp else "–" for c in counts])
        L += [md_table(["server"] + [f"{c:,}" for c in counts], rows), ""]
        rows = []
        for ch in chs:
            for c in counts:
                x = pp.get((ch, c))
                if x:
                    rows.append([NAMES[ch], f"{c:,}", n(x["msgs_per_s"]), n(x["p50_us"]), n(x["p99_us"]),
                                 n(x["server_cpu_s_per_100k"], 2), n((x["loadgen_cpu_share"] or 0) * 100) + " %",
                                 n(x["peak_kib"] / 1024, 1), x["refused"], x["timeouts"], x["bytes_wrong"]])
        L += ["Every figure:", "", md_table(["server", "conns", "msg/s", "p50 µs", "p99 µs", "server CPU s / 100k msg",
                                             "loadgen CPU", "peak MiB (PSS)", "refused", "timed out", "bytes wrong"], rows), "",
              "A load generator near 100 % CPU means the figure is the client's limit as much as the server's.", ""]
        rows = []
        for ch in chs:
            cells_ = []
            for c in counts:
                x = pp.get((ch, c))
                v, i = (x or {}).get("voluntary_switches_per_msg"), (x or {}).get("involuntary_switches_per_msg")
                cells_.append(f"{n(v, 2)} + {n(i, 2)}" if v is not None and i is not None else "–")
            rows.append([NAMES[ch]] + cells_)
        if any(c != "–" for r in rows for c in r[1:]):
            L += ["## Context switches per message", "",
                  "The text: event loops avoid \"context switching\". Context switches of the server's tasks "
                  "(every thread and child) per echoed message, voluntary + involuntary: a task that blocked, "
                  "a task preempted while it could run. Counted from /proc/PID/task/TID/status over a window "
                  "of the ping-pong run where every connection is busy. A system call is not one: it enters "
                  "the kernel and comes back to the same task (a mode switch).", "",
                  md_table(["server"] + [f"{c:,}" for c in counts], rows), ""]
        k = f["peer_clients"]
        if any(f[f"{ch}_vs_{p}"] for ch in ("07", "08") for p in ("node", "asyncio")):
            L += [f"Ratios at {k:,} connections, in messages per second (and in server CPU per message, the "
                  "peer's over the lab's): " + "; ".join(
                      f"{ch} / {NAMES[p]} = {f[f'{ch}_vs_{p}']:.2f}× ({f[f'{ch}_cpu_vs_{p}'] or 0:.1f}×)"
                      for ch in ("07", "08") for p in ("node", "asyncio") if f[f"{ch}_vs_{p}"]) + ".", ""]

    ib = f["idlebusy"]
    if ib:
        idles = sorted({i for _, i in ib})
        chs = [ch for ch in ORDER if any(h == ch for h, _ in ib)]
        L += ["## Idle + busy: 100 busy connections beside N idle ones", "",
              "The text: \"100 clients : select() ≈ epoll()\", \"10 000 clients : epoll() 100x plus rapide\". "
              "Messages per second of the 100 busy connections, and server CPU µs per message. The idle "
              "count sweeps the ratio of idle to busy connections, 1:1 to 100:1.", ""]
        rows = [[NAMES[ch]] + [f"{n(ib[(ch, i)]['msgs_per_s'])} ({n(ib[(ch, i)]['server_cpu_us_per_msg'], 1)} µs)"
                               if (ch, i) in ib else "–" for i in idles] for ch in chs]
        L += [md_table(["server"] + [f"{i:,} idle" for i in idles], rows), ""]
        for i in idles:
            e, p = ib.get(("07", i)), ib.get(("06", i))
            if e and p:
                L += [f"- {i:,} idle: 07 / 06 = {ratio(e['msgs_per_s'], p['msgs_per_s']):.2f}× the messages per second, "
                      f"06 spends {ratio(p['server_cpu_us_per_msg'], e['server_cpu_us_per_msg']):.2f}× 07's CPU per message."]
        L += [""]

    ins = f["instructions"]
    if ins:
        counts = sorted({c for _, c in ins})
        rows = [[NAMES[ch]] + [n(ins.get((ch, c))) for c in counts] for ch in ("05", "06", "07") if any(h == ch for h, _ in ins)]
        L += ["## User-space instructions per message (callgrind)", "",
              "100 busy connections, the rest idle; counted from once every connection is held to the last "
              "echo, so accepts and set-up are left out. The text: select and poll O(n), epoll O(1).", "",
              md_table(["server"] + [f"{c:,} conns" for c in counts], rows), ""]

    sc = f["syscalls"]
    if sc:
        rows = []
        for ch in ORDER:
            s, p = sc.get((ch, "strace")), sc.get((ch, "perf"))
            if s or p:
                rows.append([NAMES[ch], s["per_msg"] if s else "–", s["io_per_msg"] if s else "–",
                             s["wait_per_msg"] if s else "–", s["other_per_msg"] if s else "–", p["per_msg"] if p else "–"])
        L += ["## System calls per echoed message", "",
              "strace -f -c follows every thread and child; it slows the server down, so the server is the "
              "bottleneck and one wait (select, poll, epoll_wait) serves many messages: the cost of a busy "
              "server. perf counts the same tracepoint at full speed, where a server faster than its client "
              "wakes up for a few messages at a time.", "",
              md_table(["server", "strace: all", "recv/send", "waits", "other", "perf: all"], rows), ""]

    cn = f["connect"]
    if cn:
        rows = [[NAMES[ch], n(x["conns_per_s"]), n(x["server_cpu_s_per_1k_conns"] * 1000 if x["server_cpu_s_per_1k_conns"] else None),
                 n(x["p50_us"]), n(x["p99_us"]), x["refused"] + x["timeouts"] + x["errors"], x["bytes_wrong"]]
                for ch in ORDER if (x := cn.get(ch))]
        L += ["## Connect, request, close (Stevens' server-design table, UNP ch. 30)", "",
              "Each client connects, sends 64 bytes, reads them back and closes, again and again. Server CPU "
              "includes reaped children (02).", "",
              md_table(["server", "conn/s", "server CPU ms / 1,000 conns", "p50 µs", "p99 µs", "failed", "bytes wrong"], rows), ""]

    cr = f["create"]
    if cr:
        label = {"fork_exit_wait": "process: fork + _exit + waitpid", "fork_64mib": "process, parent with 64 MiB written",
                 "thread_create_join": "thread: pthread_create + join"}
        claim = {"fork_exit_wait": "~1-2 ms", "fork_64mib": "~1-2 ms", "thread_create_join": "~10-100 µs"}
        rows = [[label.get(w, w), claim.get(w, ""), n(x["median_us"], 1), n(x["p90_us"], 1), x["n"]] for w, x in cr.items()]
        L += ["## Creating a process against a thread", "", "The text: \"Coût création\": process ~1-2 ms, thread ~10-100 µs.", "",
              md_table(["what", "the text", "median µs", "p90 µs", "n"], rows), ""]

    mem = f["memory"]
    if mem:
        rows = [[NAMES[ch], f"{c:,}", f"{x.get('accepted', c):,}", x["processes"], n(x["base_pss_kib"]), n(x["pss_kib"]),
                 n(x["pss_per_conn_kib"], 2), n(x["rss_per_conn_kib"], 2), n(x.get("KernelStack_per_conn_kib"), 2),
                 n(x.get("PageTables_per_conn_kib"), 2), n(x.get("SUnreclaim_per_conn_kib"), 2)] for (ch, c), x in mem.items()]
        L += ["## Server memory per idle connection", "",
              "User space: PSS shares each page among the processes that map it (02's children share the "
              "parent's code), RSS counts it in each; per connection the server accepted (04 runs with -w 8: "
              "8 sessions served, the ring's worth queued, the rest left in the kernel's backlog). The kernel's "
              "share, from /proc/meminfo, per connection held: the kernel stacks of the server's tasks, their "
              "page tables (neither is in PSS or RSS), and the unreclaimable slab: the kernel objects of both "
              "ends of each connection (sockets, open files, epoll items; the client's end lives in the same "
              "kernel) and of each task the server starts (a process's or a thread's own structures). "
              "Idle sockets hold no buffers.", "",
              md_table(["server", "held", "accepted", "processes", "idle server KiB", "holding KiB", "PSS KiB / conn",
                        "RSS KiB / conn", "kernel stack KiB / conn", "page tables KiB / conn", "slab KiB / conn"], rows), ""]

    tl = f["timeline"]
    if tl:
        L += ["## Timelines", "", "Clients connecting at the same moment, each with a session of the same length: "
              + "; ".join(f"{x['label']}: last echo at {x['last_echo_s']:.2f} s" for x in tl.values()) + ".", ""]
        L += [f"![{x['label']}](timeline-{ch}.png)" for ch, x in tl.items()] + [""]

    L += ["## Targets", "", md_table(["target", "measured", "met"],
                                     [[t, v, {True: "yes", False: "**no**", None: "–"}[ok]] for t, v, ok in targets(doc)]), ""]
    if doc["skipped"] or doc["failed"]:
        L += ["## Not run, and why", ""] + [f"- {w}: {y}" for w, y in doc["skipped"]]
        L += [f"- failed: {x}" for x in doc["failed"]] + [""]
    with open(path, "w") as fh:
        fh.write("\n".join(L))


# ----------------------------------------------------------------------------------------------

PLOT_HEAD = """set terminal pngcairo size 800,450 font 'Sans,10'
set output '{out}'
set title '{title}'
set key outside right
set grid
"""


def gnuplot(script, out):
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True, timeout=60)
    if r.returncode:
        print(f"bench: gnuplot failed for {out}: {r.stderr.strip()[:200]}", file=sys.stderr)


def plot_lines(doc, outdir, workload, key, ylabel, fname, title, chapters, xkey="clients", logy=False):
    series = []
    for ch in chapters:
        pts = sorted((c[xkey], c[key]) for c in cells(doc, workload, chapter=ch) if c.get(key) is not None)
        if len(pts) > 1:
            series.append((ch, pts))
    if not series:
        return
    data = os.path.join(outdir, f"{fname}.dat")
    with open(data, "w") as fh:
        for ch, pts in series:
            fh.write(f"# {NAMES[ch]}\n" + "".join(f"{x} {y}\n" for x, y in pts) + "\n\n")
    plots = ", ".join(f"'{data}' index {i} with linespoints lw 2 title '{NAMES[ch]}'" for i, (ch, _) in enumerate(series))
    gnuplot(PLOT_HEAD.format(out=os.path.join(outdir, fname + ".png"), title=title)
            + f"set logscale x\nset xlabel '{xkey.replace('clients', 'connections')}'\nset ylabel '{ylabel}'\n"
            + ("set logscale y\n" if logy else "set yrange [0:*]\n") + f"plot {plots}\n", fname)
    os.unlink(data)


def plot_bars(outdir, rows, ylabel, fname, title):
    if not rows:
        return
    data = os.path.join(outdir, f"{fname}.dat")
    with open(data, "w") as fh:
        fh.write("".join(f"\"{label}\" {y}\n" for label, y in rows))
    gnuplot(PLOT_HEAD.format(out=os.path.join(outdir, fname + ".png"), title=title)
            + f"set style fill solid 0.8\nset boxwidth 0.6\nset yrange [0:*]\nset ylabel '{ylabel}'\nset key off\n"
            + f"set xtics rotate by -30\nplot '{data}' using 0:2:xtic(1) with boxes lc rgb '#3070b0'\n", fname)
    os.unlink(data)


def write_plots(doc, outdir):
    if not shutil.which("gnuplot"):
        print("bench: gnuplot is not installed (harness/setup --bench installs it): no plots", file=sys.stderr)
        return
    chs = [c for c in ORDER if c not in ("07e", "08e")]
    plot_lines(doc, outdir, "pingpong", "msgs_per_s", "messages per second", "throughput",
               "Ping-pong: messages per second against connections", chs)
    plot_lines(doc, outdir, "pingpong", "p99_us", "p99 round trip (µs)", "p99",
               "Ping-pong: p99 round trip against connections", chs, logy=True)
    plot_lines(doc, outdir, "instructions", "per_msg", "user-space instructions per message", "instructions",
               "Instructions per message: 100 busy connections, the rest idle", ["05", "06", "07"])
    plot_lines(doc, outdir, "idlebusy", "server_cpu_us_per_msg", "server CPU µs per message", "idlebusy",
               "100 busy connections beside N idle ones", chs, xkey="idle")
    rows = [(NAMES[c["chapter"]].split("-")[0] + " " + NAMES[c["chapter"]].split("-", 1)[-1].split()[0],
             round(c["server_cpu_s_per_1k_conns"] * 1000, 1))
            for ch in chs for c in cells(doc, "connect", chapter=ch) if c.get("server_cpu_s_per_1k_conns")]
    plot_bars(outdir, rows, "server CPU ms per 1,000 connections", "connect",
              "Connect, request, close: server CPU per 1,000 connections")
    for c in cells(doc, "timeline"):
        tsv = os.path.join(outdir, c["tsv"])
        if os.path.exists(tsv):
            r = subprocess.run(["gnuplot", "-e", f"infile='{tsv}'; outfile='{tsv[:-4]}.png'; title='{c['label']}'",
                                os.path.join(HERE, "timeline.gp")], capture_output=True, text=True, timeout=60)
            if r.returncode:
                print(f"bench: gnuplot failed for {tsv}: {r.stderr.strip()[:200]}", file=sys.stderr)


def write_all(doc, outdir):
    with open(os.path.join(outdir, "results.json"), "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=False)
        fh.write("\n")
    write_csv(doc, os.path.join(outdir, "results.csv"))
    write_md(doc, os.path.join(outdir, "results.md"))
    write_plots(doc, outdir)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(os.path.join(sys.argv[1], "results.json")) as fh:
        d = json.load(fh)
    write_all(d, sys.argv[1])
