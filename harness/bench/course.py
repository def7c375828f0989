#!/usr/bin/env python3
"""harness/bench/course.py — write the benchmark's figures into COURSE.md and COURSE.fr.md
(`make course-numbers`).

The course quotes the committed reference run (harness/bench/reference/results.json) between marker
lines, never by hand; COURSE.fr.md, its French twin, has the same marker lines:

    <!-- bench: NAME (written by harness/bench/course.py from harness/bench/reference) -->
    ...
    <!-- end bench: NAME -->

One generator writes both languages: each region function runs once per language, every sentence
with its French twin beside it (tr(en, fr)), so the two files always quote the same figures. In
French, numbers are written "51 428" and "0,95×"; links to COURSE.md's headings point to
COURSE.fr.md's (FRENCH_HEADINGS).

    harness/bench/course.py           rewrite every marked region of COURSE.md, and of COURSE.fr.md
                                      when it exists, from the reference run
    harness/bench/course.py --check   change nothing; exit 1 naming the file and the regions of each
                                      one that is stale
    harness/bench/course.py --lang en|fr    COURSE.md only, or COURSE.fr.md only
    harness/bench/course.py --from DIR      use DIR/results.json instead (to preview a run of your own)
    harness/bench/course.py --lang fr --file FILE    write (or --check) FILE instead of COURSE.fr.md
                                      (to try a copy)
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import report  # noqa: E402
from report import NAMES, ratio  # noqa: E402

REGION = re.compile(r"^<!-- bench: (?P<name>[\w-]+) .*?-->\n(?P<body>.*?)^<!-- end bench: (?P=name) -->$", re.M | re.S)
FILES = {"en": "COURSE.md", "fr": "COURSE.fr.md"}

# The language being written: render() sets it, tr() and the number formats read it.
LANG = "en"


def tr(en, fr):
    """The English or the French of one piece of prose, as the language being written asks."""
    return fr if LANG == "fr" else en


def local(s):
    """A number formatted the English way ('51,428.50'), written the French way ('51 428,50')."""
    return s.replace(",", " ").replace(".", ",") if LANG == "fr" else s


def fx(x, spec=","):
    """format(x, spec), in the language being written: fx(1000) is '1,000' or '1 000'."""
    return local(format(x, spec))


def n(x, digits=0):
    """report.n (thousands separated, '–' when missing), in the language being written."""
    return local(report.n(x, digits))


def ms(us):
    return fx(us / 1000, ",.2f") + " ms" if us >= 1000 else fx(us, ",.0f") + " µs"


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
    return tr(f"ping-pong at {fx(c)} connection{'s' if c > 1 else ''}: {n(x['msgs_per_s'])} messages/s, p99 "
              f"{ms(x['p99_us'])}, {n(x['server_cpu_s_per_100k'], 2)} s of server CPU per 100,000 messages",
              f"Ping-pong à {fx(c)} connexion{'s' if c > 1 else ''} : {n(x['msgs_per_s'])} messages/s, p99 "
              f"{ms(x['p99_us'])}, {n(x['server_cpu_s_per_100k'], 2)} s de CPU du serveur pour 100 000 messages")


def connect_pair(cn, ch):
    """'02: 6,315/s, 231 ms': one model's short connections, per second and server CPU per 1,000."""
    return f"{ch}{tr(':', ' :')} {n(cn[ch]['conns_per_s'])}/s, {n(cn[ch]['server_cpu_s_per_1k_conns'] * 1000)} ms"


def region_01(f, doc):
    t = f["timeline"].get("01")
    x = pp(f, "01", 1)
    lines = [tr(f"- {pingpong_line(f, '01')} (the load generator used {n(x['loadgen_cpu_share'] * 100)} % of a core: "
                "with one client, both sides mostly wait for each other).",
                f"- {pingpong_line(f, '01')} (le générateur de charge a utilisé {n(x['loadgen_cpu_share'] * 100)} % "
                "d'un cœur : avec un seul client, chaque côté passe l'essentiel de son temps à attendre l'autre).")
             if x else None]
    cn = f["connect"]
    if all(ch in cn for ch in ("01", "02", "03", "07")):
        others = tr(", ", " ; ").join(connect_pair(cn, ch) for ch in ("02", "03", "07"))
        lines.append(tr(f"- Connect, request, close: {n(cn['01']['conns_per_s'])} connections/s and "
                        f"{n(cn['01']['server_cpu_s_per_1k_conns'] * 1000)} ms of server CPU per 1,000 connections "
                        f"({others}).",
                        f"- Connexion, requête, fermeture : {n(cn['01']['conns_per_s'])} connexions/s et "
                        f"{n(cn['01']['server_cpu_s_per_1k_conns'] * 1000)} ms de CPU du serveur pour 1 000 connexions "
                        f"({others})."))
    if t:
        lines.append(tr(f"- {t['clients']} clients connecting at once, 1 s sessions: the last is served at "
                        f"{fx(t['last_echo_s'], '.1f')} s, a staircase "
                        "([timeline](harness/bench/reference/timeline-01.png)).",
                        f"- {t['clients']} clients se connectent en même temps, pour des sessions de 1 s : le dernier est "
                        f"servi à {fx(t['last_echo_s'], '.1f')} s, en escalier "
                        "([chronologie](harness/bench/reference/timeline-01.png))."))
    return lines


def region_02(f, doc):
    cr, mem, cn = f["create"], f["memory"].get(("02", 1000)), f["connect"]
    lines = []
    if "fork_exit_wait" in cr:
        a, b = cr["fork_exit_wait"], cr.get("fork_64mib")
        lines.append(tr(f"- Creating and reaping a process: {ms(a['median_us'])} (median of {fx(a['n'])}); the text says "
                        "\"~1-2 ms\".",
                        f"- Créer un processus fils et le récupérer : {ms(a['median_us'])} (médiane de {fx(a['n'])} "
                        "mesures) ; le texte dit « ~1-2 ms ».")
                     + (tr(f" From a parent that has written 64 MiB: {ms(b['median_us'])} — fork copies the page tables, "
                           "so its cost grows with the parent's memory.",
                           f" Depuis un parent qui a écrit 64 MiB : {ms(b['median_us'])} — fork copie les tables des "
                           "pages, si bien que son coût croît avec la mémoire du parent.") if b else ""))
    if mem:
        lines.append(tr(f"- Memory: {n(mem['pss_per_conn_kib'], 1)} KiB per connection in user space (PSS of the whole "
                        f"tree, {fx(mem['processes'])} processes for {fx(mem['clients'])} clients; RSS would count "
                        f"{n(mem['rss_per_conn_kib'], 1)} KiB, the shared pages once per process)",
                        f"- Mémoire : {n(mem['pss_per_conn_kib'], 1)} KiB par connexion en espace utilisateur (PSS de "
                        f"tout l'arbre des processus, {fx(mem['processes'])} processus pour {fx(mem['clients'])} "
                        "clients ; "
                        f"le RSS donnerait {n(mem['rss_per_conn_kib'], 1)} KiB, en comptant les pages partagées une "
                        "fois par processus)")
                     + kernel_share(mem) + ".")
    if "02" in cn and "03" in cn:
        lines.append(tr(f"- Connect, request, close: {n(cn['02']['conns_per_s'])} connections/s and "
                        f"{n(cn['02']['server_cpu_s_per_1k_conns'] * 1000)} ms of server CPU per 1,000 connections "
                        f"({connect_pair(cn, '03')}).",
                        f"- Connexion, requête, fermeture : {n(cn['02']['conns_per_s'])} connexions/s et "
                        f"{n(cn['02']['server_cpu_s_per_1k_conns'] * 1000)} ms de CPU du serveur pour 1 000 connexions "
                        f"({connect_pair(cn, '03')})."))
    x = pp(f, "02", 1000)
    if x:
        lines.append(f"- {degrades(f, '02', 1000)}")
    x = pp(f, "02", 10000)
    if x:
        lines.append(f"- {pingpong_line(f, '02')}" + (
            tr(f"; {fx(x['refused'])} connections refused over the runs: 02 keeps at most 1,024 children, its guard "
               "against a fork bomb, and turns the rest away",
               f" ; {fx(x['refused'])} connexions refusées sur l'ensemble des exécutions : 02 garde au plus 1 024 "
               "processus fils, sa protection contre une bombe fork, et refuse les autres")
            if x["refused"] else "") + ".")
    return lines


def degrades(f, ch, c):
    """The text's ❌ for ch at c clients, read as it means it: not failing, but the worst of its row."""
    x = pp(f, ch, c)
    row = {h: y for (h, k), y in f["pingpong"].items() if k == c and h in ("02", "03", "04", "05", "06", "07", "08")}
    best = max(row, key=lambda h: row[h]["msgs_per_s"])
    failed = x["timeouts"] + x["refused"] + x["bytes_wrong"]
    worst = min(row, key=lambda h: row[h]["msgs_per_s"]) == ch
    return (tr(f"Ping-pong at {fx(c)} connections: {n(x['msgs_per_s'])} messages/s, p99 {ms(x['p99_us'])}, "
               f"{n(x['server_cpu_s_per_100k'], 2)} s of CPU per 100,000 messages, against {NAMES[best]}'s "
               f"{n(row[best]['msgs_per_s'])}/s and p99 {ms(row[best]['p99_us'])}: ",
               f"Ping-pong à {fx(c)} connexions : {n(x['msgs_per_s'])} messages/s, p99 {ms(x['p99_us'])}, "
               f"{n(x['server_cpu_s_per_100k'], 2)} s de CPU pour 100 000 messages, contre "
               f"{n(row[best]['msgs_per_s'])}/s et un p99 de {ms(row[best]['p99_us'])} pour {NAMES[best]} : ")
            + (tr("connections failed.", "des connexions ont échoué.") if failed else
               tr(f"every connection served, {'the worst' if worst else 'not the worst'} cell of the row. The text's ❌ "
                  f"means \"not suited\", not \"fails\", and in that sense it {'holds' if worst else 'does not hold'}.",
                  f"toutes les connexions ont été servies, et {'c' if worst else 'ce n'}'est "
                  f"{'' if worst else 'pas '}la pire case de la ligne. Le ❌ du texte signifie « inadapté », non "
                  f"« échoue », et en ce sens il {'tient' if worst else 'ne tient pas'}.")))


def kernel_share(m):
    """', and in the kernel ...': what PSS does not count, from /proc/meminfo (harness/bench/run)."""
    ks, pt, slab = (m.get(f"{k}_per_conn_kib") for k in ("KernelStack", "PageTables", "SUnreclaim"))
    if ks is None or pt is None:
        return ""
    return (tr(f"; the kernel's share, which PSS does not count: {n(ks, 1)} KiB of kernel stack and {n(pt, 1)} KiB of "
               "page tables per connection",
               f" ; la part du noyau, que le PSS ne compte pas : {n(ks, 1)} KiB de pile noyau et {n(pt, 1)} KiB de "
               "tables des pages par connexion")
            + (tr(f", and {n(slab, 1)} KiB of kernel objects (slab: both ends' sockets, and each task's own structures)",
                  f", et {n(slab, 1)} KiB d'objets du noyau (slab : les sockets des deux extrémités, et les structures "
                  "propres à chaque tâche)") if slab is not None else ""))


def region_03(f, doc):
    cr, mem = f["create"], f["memory"].get(("03", 1000))
    lines = []
    if "thread_create_join" in cr and "fork_exit_wait" in cr:
        t, p = cr["thread_create_join"], cr["fork_exit_wait"]
        lines.append(tr(f"- Creating and joining a thread: {ms(t['median_us'])} (the text: \"~10-100 µs\"), "
                        f"{fx(ratio(p['median_us'], t['median_us']), '.0f')}× less than a process.",
                        f"- Créer un thread et le joindre : {ms(t['median_us'])} (le texte : « ~10-100 µs »), "
                        f"{fx(ratio(p['median_us'], t['median_us']), '.0f')}× moins qu'un processus."))
    if mem:
        lines.append(tr(f"- Memory: {n(mem['pss_per_conn_kib'], 1)} KiB per connection in user space: the pages of its "
                        "256 KiB stack that a thread touches, not the 256 KiB it reserves (03 sets that size; the "
                        "default, 8 MiB, is RLIMIT_STACK's)",
                        f"- Mémoire : {n(mem['pss_per_conn_kib'], 1)} KiB par connexion en espace utilisateur : les "
                        "pages qu'un thread touche dans sa pile de 256 KiB, pas les 256 KiB qu'il réserve (03 fixe "
                        "cette taille ; la valeur par défaut, 8 MiB, est celle de RLIMIT_STACK)")
                     + kernel_share(mem) + ".")
    if pingpong_line(f, "03"):
        lines.append(f"- {pingpong_line(f, '03')}.")
    s = switches_line(f, ("03", "07"), 1000)
    if s:
        lines.append(tr(f"- Context switches per message at 1,000 connections (voluntary + involuntary): {s}.",
                        f"- Changements de contexte par message à 1 000 connexions (volontaires + involontaires) : {s}."))
    return lines


def switches_line(f, chs, c):
    parts = []
    for ch in chs:
        x = pp(f, ch, c)
        if x and x.get("voluntary_switches_per_msg") is not None:
            v, i = fx(x["voluntary_switches_per_msg"], ".2f"), fx(x["involuntary_switches_per_msg"], ".2f")
            parts.append(tr(f"{ch} {v} + {i}", f"{v} + {i} pour {ch}"))
    return tr(", ", " ; ").join(parts) if len(parts) == len(chs) else ""


def region_04(f, doc):
    cn, t = f["connect"], f["timeline"].get("04")
    lines = []
    if "04" in cn:
        others = tr(", ", " ; ").join(f"{ch}{tr(':', ' :')} {n(cn[ch]['conns_per_s'])}" for ch in ("02", "03", "07")
                                      if ch in cn)
        lines.append(tr(f"- Connect, request, close with 8 workers: {n(cn['04']['conns_per_s'])} connections/s, "
                        f"{n(cn['04']['server_cpu_s_per_1k_conns'] * 1000)} ms of server CPU per 1,000 ({others}).",
                        f"- Connexion, requête, fermeture avec 8 workers : {n(cn['04']['conns_per_s'])} connexions/s, "
                        f"{n(cn['04']['server_cpu_s_per_1k_conns'] * 1000)} ms de CPU du serveur pour 1 000 "
                        f"({others})."))
    if t:
        lines.append(tr(f"- {t['clients']} clients at once against `-w 4`: served four at a time, the last at "
                        f"{fx(t['last_echo_s'], '.1f')} s ([timeline](harness/bench/reference/timeline-04.png)).",
                        f"- {t['clients']} clients en même temps contre `-w 4` : servis quatre par quatre, le dernier à "
                        f"{fx(t['last_echo_s'], '.1f')} s ([chronologie](harness/bench/reference/timeline-04.png))."))
    m = f["memory"].get(("04", 1000))
    if m and "accepted" in m:
        lines.append(tr(f"- Memory with 1,000 clients and 8 workers: the server accepted {fx(m['accepted'])} of them (8 "
                        f"served, the rest queued in its ring) at {n(m['pss_per_conn_kib'], 2)} KiB each; the other "
                        f"{fx(1000 - m['accepted'])} wait in the kernel's backlog, accepted by nobody, and cost only the "
                        "kernel's slab: a queued client costs a queue slot, not a thread.",
                        f"- Mémoire avec 1 000 clients et 8 workers : le serveur en a accepté {fx(m['accepted'])} (8 "
                        "servis, les autres en attente dans son tampon circulaire), à "
                        f"{n(m['pss_per_conn_kib'], 2)} KiB chacun ; les {fx(1000 - m['accepted'])} autres, que personne "
                        "n'a acceptés, attendent dans le backlog du noyau et ne coûtent que le slab du noyau : un "
                        "client en file d'attente coûte une place dans la file, pas un thread."))
    return lines


def instr_line(f, ch):
    ins = sorted((c, v) for (h, c), v in f["instructions"].items() if h == ch)
    if len(ins) < 2:
        return ""
    return (", ".join(f"{fx(v, ',.0f')} {tr('at', 'à')} {fx(c)}" for c, v in ins)
            + f" (×{fx(ins[-1][1] / ins[0][1], '.2f')})")


def region_05(f, doc):
    lines = []
    if instr_line(f, "05"):
        lines.append(tr(f"- User-space instructions per message, 100 busy connections and the rest idle: "
                        f"{instr_line(f, '05')}: the loop tests every descriptor up to the highest after each select().",
                        f"- Instructions en espace utilisateur par message, 100 connexions en activité et les autres "
                        f"inactives : {instr_line(f, '05')} : après chaque select(), la boucle teste chaque descripteur "
                        "jusqu'au plus élevé."))
    ib = f["idlebusy"]
    a, b = pp(f, "05", 100), pp(f, "07", 100)
    if a and b and ("05", 100) in ib and ("07", 100) in ib:
        c5, c7 = ib[("05", 100)]["server_cpu_us_per_msg"], ib[("07", 100)]["server_cpu_us_per_msg"]
        r1, r2 = ratio(a["server_cpu_s_per_100k"], b["server_cpu_s_per_100k"]), ratio(c5, c7)
        close = all(0.8 <= r <= 1.25 for r in (r1, r2))
        lines.append(tr(f"- \"100 clients: select() ≈ epoll()\", two ways. 100 connections all busy (ping-pong): "
                        f"{n(a['msgs_per_s'])} messages/s against 07's {n(b['msgs_per_s'])}, and {fx(r1, '.2f')}× 07's "
                        f"CPU per message. 100 busy beside 100 idle: {n(ib[('05', 100)]['msgs_per_s'])} against "
                        f"{n(ib[('07', 100)]['msgs_per_s'])}, {fx(r2, '.2f')}× the CPU per message. ",
                        f"- « 100 clients : select() ≈ epoll() », de deux façons. 100 connexions toutes en activité "
                        f"(ping-pong) : {n(a['msgs_per_s'])} messages/s contre {n(b['msgs_per_s'])} pour 07, et "
                        f"{fx(r1, '.2f')}× le CPU par message de 07. 100 en activité à côté de 100 inactives : "
                        f"{n(ib[('05', 100)]['msgs_per_s'])} contre {n(ib[('07', 100)]['msgs_per_s'])}, "
                        f"{fx(r2, '.2f')}× le CPU par message. ")
                     + (tr("Within a quarter either way, in both: at 100, select() ≈ epoll() holds; between runs "
                           "the ratio moves by more than the difference (an earlier run had select() 36% dearer in "
                           "ping-pong).",
                           "À un quart près, dans un sens ou dans l'autre, et dans les deux cas : à 100, select() ≈ "
                           "epoll() tient ; d'une exécution à l'autre, le rapport varie plus que cet écart (une "
                           "exécution précédente donnait select() 36 % plus coûteux en ping-pong).") if close else
                        tr("Not equal: what select() costs more is its scan, in the kernel and in the loop.",
                           "Pas d'égalité : ce que select() coûte de plus, c'est son balayage, dans le noyau comme dans "
                           "la boucle.")))
    lines.append(tr("- Not run at 10,000 (nor 1,000 idle + 100 busy): no descriptor at or above FD_SETSIZE (1,024) "
                    "fits in an fd_set.",
                    "- Pas de mesure à 10 000 (ni à 1 000 inactives + 100 en activité) : aucun descripteur supérieur ou "
                    "égal à FD_SETSIZE (1 024) ne tient dans un fd_set."))
    return lines


def region_06(f, doc):
    lines = []
    if instr_line(f, "06"):
        lines.append(tr(f"- User-space instructions per message: {instr_line(f, '06')}: the loop walks the whole array, "
                        "and the kernel polls every entry on every call (its share is not in this count).",
                        f"- Instructions en espace utilisateur par message : {instr_line(f, '06')} : la boucle parcourt "
                        "tout le tableau, et le noyau interroge chaque entrée à chaque appel (sa part n'entre pas dans "
                        "ce décompte)."))
    ib = f["idlebusy"]
    big = max((i for h, i in ib if h == "06"), default=None)
    if big and ("07", big) in ib:
        p, e = ib[("06", big)], ib[("07", big)]
        lines.append(tr(f"- 100 busy beside {fx(big)} idle: {n(p['msgs_per_s'])} messages/s and "
                        f"{n(p['server_cpu_us_per_msg'], 1)} µs of server CPU per message, against 07's "
                        f"{n(e['msgs_per_s'])} and {n(e['server_cpu_us_per_msg'], 1)} µs.",
                        f"- 100 connexions en activité à côté de {fx(big)} inactives : {n(p['msgs_per_s'])} messages/s "
                        f"et {n(p['server_cpu_us_per_msg'], 1)} µs de CPU du serveur par message, contre "
                        f"{n(e['msgs_per_s'])} et {n(e['server_cpu_us_per_msg'], 1)} µs pour 07."))
    return lines


def region_07(f, doc):
    lines = []
    s, se, p = f["syscalls"].get(("07", "strace")), f["syscalls"].get(("07e", "strace")), f["syscalls"].get(("07", "perf"))
    if s:
        lines.append(tr(f"- System calls per echoed message: {fx(s['per_msg'], '.2f')} level-triggered, ",
                        f"- Appels système par message renvoyé en écho : {fx(s['per_msg'], '.2f')} en mode déclenché "
                        "par niveau, ")
                     + (f"{fx(se['per_msg'], '.2f')} {tr('with', 'avec')} `-e` " if se else "")
                     + tr("(strace: a busy server, where one epoll_wait() serves many messages)",
                          "(strace : un serveur occupé, où un seul epoll_wait() sert de nombreux messages)")
                     + (tr(f"; {fx(p['per_msg'], '.2f')} at full speed (perf), where the server, faster than its client, "
                           "wakes up for a few messages at a time",
                           f" ; {fx(p['per_msg'], '.2f')} à pleine vitesse (perf), où le serveur, plus rapide que son "
                           "client, se réveille pour quelques messages à la fois") if p else "") + ".")
    if instr_line(f, "07"):
        lines.append(tr(f"- User-space instructions per message: {instr_line(f, '07')}: flat, where 05 and 06 grow.",
                        f"- Instructions en espace utilisateur par message : {instr_line(f, '07')} : constantes, là où "
                        "celles de 05 et 06 croissent."))
    m = f["memory"].get(("07", 10000))
    if m:
        slab = m.get("SUnreclaim_per_conn_kib")
        lines.append(tr(f"- Memory: {n(m['pss_per_conn_kib'], 2)} KiB per idle connection with 10,000 held (a struct "
                        "conn; the output buffer exists only while output is pending). An idle socket holds no buffer; "
                        "what this leaves out is the kernel's own memory per connection, its slab objects (",
                        f"- Mémoire : {n(m['pss_per_conn_kib'], 2)} KiB par connexion inactive, avec 10 000 connexions "
                        "ouvertes (une struct conn ; le tampon de sortie n'existe que tant qu'une sortie est en "
                        "attente). Un socket inactif ne détient aucun tampon ; ce que ce chiffre laisse de côté, c'est "
                        "la mémoire propre du noyau pour chaque connexion, ses objets slab (")
                     + (tr(f"{n(slab, 1)} KiB for both ends of a connection, from /proc/meminfo",
                           f"{n(slab, 1)} KiB pour les deux extrémités d'une connexion, d'après /proc/meminfo")
                        if slab is not None else
                        tr("about 3.6 KiB a socket on this kernel, from /proc/slabinfo",
                           "environ 3,6 KiB par socket sur ce noyau, d'après /proc/slabinfo")) + ").")
    k = f["peer_clients"]
    if f["07_vs_node"] or f["07_vs_asyncio"]:
        lines.append(tr(f"- At {fx(k)} busy connections: ", f"- À {fx(k)} connexions en activité : ")
                     + tr("; ", " ; ").join(tr(f"{ratio_txt(f, '07', peer)} {NAMES[peer]}'s messages/s",
                                               f"{ratio_txt(f, '07', peer)} les messages/s de {NAMES[peer]}")
                                            for peer in ("node", "asyncio") if f[f"07_vs_{peer}"]) + ".")
    nd, e = pp(f, "node", 1000), pp(f, "07", 1000)
    if nd and e:
        lower = nd["p99_us"] < e["p99_us"]
        lines.append(tr(f"- At 1,000 connections Node.js echoes {n(nd['msgs_per_s'])} messages/s against 07's "
                        f"{n(e['msgs_per_s'])}, with a p99 of {ms(nd['p99_us'])} against {ms(e['p99_us'])}: ",
                        f"- À 1 000 connexions, Node.js renvoie en écho {n(nd['msgs_per_s'])} messages/s contre "
                        f"{n(e['msgs_per_s'])} pour 07, avec un p99 de {ms(nd['p99_us'])} contre {ms(e['p99_us'])} : ")
                     + (tr("fewer messages a second, spread more evenly over the connections (a lower p99 is "
                           "what a user of the slowest connection sees).",
                           "moins de messages par seconde, mais répartis plus également entre les connexions (un p99 "
                           "plus bas, c'est ce que voit l'utilisateur de la connexion la plus lente).") if lower else
                        tr("07 is ahead on both counts in this run (an earlier run had Node.js's p99 the lower: "
                           "the two are close, and the machine's other work decides).",
                           "07 l'emporte sur les deux plans dans cette exécution (une exécution précédente donnait à "
                           "Node.js le p99 le plus bas : les deux sont proches, et le reste de l'activité de la machine "
                           "tranche).")))
    if pingpong_line(f, "07"):
        lines.append(f"- {pingpong_line(f, '07')}.")
    return lines


def ratio_txt(f, ch, peer):
    return fx(f[f"{ch}_vs_{peer}"], ".2f") + "×"


def region_08(f, doc):
    lines = []
    a, b = pp(f, "08", at_most(f, "08") or 0), pp(f, "07", at_most(f, "07") or 0)
    if a and b:
        lines.append(tr(f"- {pingpong_line(f, '08')}; 07 alone: {n(b['msgs_per_s'])}. On two cores the load generator "
                        "takes one, so a second worker has little to gain here: the hybrid pays off with cores to spare.",
                        f"- {pingpong_line(f, '08')} ; 07 seul : {n(b['msgs_per_s'])}. Sur deux cœurs, le générateur de "
                        "charge en prend un, si bien qu'un second worker a peu à gagner ici : l'architecture hybride "
                        "est rentable quand il reste des cœurs libres."))
    s = f["syscalls"].get(("08", "strace"))
    if s:
        lines.append(tr(f"- System calls per echoed message: {fx(s['per_msg'], '.2f')} (strace, every worker followed).",
                        f"- Appels système par message renvoyé en écho : {fx(s['per_msg'], '.2f')} (strace, en suivant "
                        "chaque worker)."))
    return lines


def verdict(ok):
    """Whether a claim of the text holds: the verb alone ('holds'), so the sentence names the claim."""
    return tr("holds", "tient") if ok else tr("does not hold", "ne tient pas")


def claim(ok):
    """The verdict where the English has no subject ('...: holds'): French names it ('l'affirmation tient')."""
    return tr("", "l'affirmation ") + verdict(ok)


def region_summary(f, doc):
    """'What the measurements say': the text's claims, one by one."""
    m = doc["machine"]
    L = [tr(f"Measured by `make bench` on {m['cores']} cores ({m['cpu']}, Linux {m['kernel']}), {m['date']}; "
            "the full tables and plots are in [harness/bench/reference/results.md](harness/bench/reference/results.md). "
            "Absolute figures change from machine to machine; ratios much less.",
            f"Mesuré par `make bench` sur {m['cores']} cœurs ({m['cpu']}, Linux {m['kernel']}), le {m['date']} ; "
            "les tableaux complets et les graphiques sont dans "
            "[harness/bench/reference/results.md](harness/bench/reference/results.md). Les chiffres absolus changent "
            "d'une machine à l'autre ; les rapports, beaucoup moins."), ""]
    cr = f["create"]
    if "fork_exit_wait" in cr and "thread_create_join" in cr:
        p, t = cr["fork_exit_wait"]["median_us"], cr["thread_create_join"]["median_us"]
        L.append(tr(f"- **\"Coût création: processus ~1-2 ms, thread ~10-100 µs\".** A process: {ms(p)}; a thread: "
                    f"{ms(t)}. The thread's figure {verdict(10 <= t <= 100)}; the process is "
                    f"{'cheaper' if p < 1000 else 'dearer'} than the text says, unless the parent is big (fork copies "
                    "page tables: ",
                    f"- **« Coût création : processus ~1-2 ms, thread ~10-100 µs ».** Un processus : {ms(p)} ; un "
                    f"thread : {ms(t)}. Le chiffre du thread {verdict(10 <= t <= 100)} ; le processus est "
                    f"{'moins' if p < 1000 else 'plus'} coûteux que ne le dit le texte, sauf si le parent est gros "
                    "(fork copie les tables des pages : ")
                 + (tr(f"{ms(cr['fork_64mib']['median_us'])} with 64 MiB written).",
                       f"{ms(cr['fork_64mib']['median_us'])} avec 64 MiB écrits).") if "fork_64mib" in cr else
                    tr("see 02).", "voir 02).")))
    ppf = f["pingpong"]
    checks = []
    for ch, c, text in (("02", 1000, tr("fork ❌ at 1,000", "fork ❌ à 1 000")),
                        ("03", 1000, tr("threads ✅✅ at 1,000", "threads ✅✅ à 1 000")),
                        ("06", 10000, tr("poll ❌ at 10,000", "poll ❌ à 10 000"))):
        x = ppf.get((ch, c))
        if x:
            ok = x["timeouts"] == 0 and x["refused"] == 0 and x["bytes_wrong"] == 0
            rank = sorted((y["msgs_per_s"], h) for (h, k), y in ppf.items() if k == c and h not in ("node", "asyncio"))
            place = [h for _, h in rank].index(ch) + 1
            checks.append(tr(f"{text}: {NAMES[ch]} served {fx(c)} connections at {n(x['msgs_per_s'])} messages/s, "
                             f"p99 {ms(x['p99_us'])}{'' if ok else ' (with failures)'}, "
                             f"{'the slowest' if place == 1 else f'number {place} from the slowest'} of {len(rank)} "
                             "servers",
                             f"{text} : {NAMES[ch]} a servi {fx(c)} connexions à {n(x['msgs_per_s'])} messages/s, "
                             f"p99 {ms(x['p99_us'])}{'' if ok else ' (avec des échecs)'}, "
                             f"{'le plus lent' if place == 1 else f'le {place}e plus lent'} des {len(rank)} serveurs"))
    if checks:
        L.append(tr("- **\"Performance selon le nombre de clients\".** ",
                    "- **« Performance selon le nombre de clients ».** ")
                 + tr("; ", " ; ").join(checks)
                 + tr(". Read as \"fails\", the ❌ cells would not hold: every connection was served, every byte right. "
                      "Read as the text means them, \"degrades, not suited\", fork's holds (the slowest at 1,000, and the "
                      "dearest in memory); poll's holds when most connections are idle, where its CPU per message grows "
                      "with them (the idle + busy sweep below), not when every connection is busy. 100,000 clients were "
                      f"not tried: one process may hold {fx(m['nofile'])} descriptors here.",
                      ". Lues comme « échoue », les cases ❌ ne tiendraient pas : chaque connexion a été servie, chaque "
                      "octet était juste. Lues comme le texte l'entend, « se dégrade, inadapté », celle de fork tient "
                      "(le plus lent à 1 000, et le plus gourmand en mémoire) ; celle de poll tient quand la plupart "
                      "des connexions sont inactives, puisque son CPU par message croît avec leur nombre (le balayage "
                      "inactives + en activité, plus bas), mais pas quand toutes les connexions sont en activité. "
                      f"100 000 clients n'ont pas été essayés : un processus peut détenir ici {fx(m['nofile'])} "
                      "descripteurs."))
    sw = switches_line(f, ("02", "03", "04", "05", "06", "07"), 1000)
    if sw:
        L.append(tr("- **Event loops avoid \"context switching\".** Context switches per message at 1,000 busy "
                    f"connections, voluntary + involuntary: {sw}. A system call is a mode switch, not a context "
                    "switch: the loop still blocks in its wait when nothing is ready, but once per batch of messages, "
                    "where a thread or a process per client blocks once per message.",
                    "- **Boucles événementielles : « pas de contexte switching ».** Changements de contexte par "
                    f"message à 1 000 connexions en activité, volontaires + involontaires : {sw}. Un appel système est "
                    "un changement de mode, pas un changement de contexte : la boucle se bloque encore dans son "
                    "attente quand rien n'est prêt, mais une fois par lot de messages, là où un thread ou un "
                    "processus par client se bloque une fois par message."))
    ib = f["idlebusy"]
    big = max((i for h, i in ib if h == "06"), default=None)
    if big and ("07", big) in ib and ("06", big) in ib:
        r = ratio(ib[("06", big)]["server_cpu_us_per_msg"], ib[("07", big)]["server_cpu_us_per_msg"])
        rt = ratio(ib[("07", big)]["msgs_per_s"], ib[("06", big)]["msgs_per_s"])
        sweep = sorted(i for h, i in ib if h == "06" and ("07", i) in ib)
        growth = ", ".join(f"{fx(ratio(ib[('06', i)]['server_cpu_us_per_msg'], ib[('07', i)]['server_cpu_us_per_msg']), '.1f')}"
                           f"× {tr('at', 'à')} {i // 100}:1" for i in sweep)
        L.append(tr(f"- **\"10 000 clients: epoll() 100x plus rapide\".** With 100 busy beside {fx(big)} idle, poll uses "
                    f"{fx(r, '.1f')}× epoll's CPU per message and epoll echoes {fx(rt, '.1f')}× as many messages per "
                    f"second: the direction holds, the factor 100 {'holds' if r >= 100 else 'does not'} here. The factor "
                    "is not a constant of the two calls: it grows with the share of idle connections, which poll walks "
                    f"and epoll never sees (poll's CPU per message over epoll's, idle to busy: {growth}).",
                    f"- **« 10 000 clients : epoll() 100x plus rapide ».** Avec 100 connexions en activité à côté de "
                    f"{fx(big)} inactives, poll consomme {fx(r, '.1f')}× le CPU par message d'epoll, et epoll renvoie en "
                    f"écho {fx(rt, '.1f')}× plus de messages par seconde : le sens de l'écart tient, le facteur 100 "
                    f"{'tient' if r >= 100 else 'ne tient pas'} ici. Ce facteur n'est pas une constante des deux "
                    "appels : il croît avec la part de connexions inactives, que poll parcourt et qu'epoll ne voit "
                    "jamais (CPU par message de poll rapporté à celui d'epoll, selon le rapport inactives/en activité : "
                    f"{growth})."))
    g5, g6, g7 = f["instr_growth_05"], f["instr_growth_06"], f["instr_growth_07"]
    if g7 and g6:
        L.append(tr(f"- **\"select() et poll() O(n), epoll() O(1)\".** User-space instructions per message from "
                    f"{fx(f['instr_counts_07'][0])} to {fx(f['instr_counts_07'][-1])} connections: ",
                    f"- **« select() et poll() O(n), epoll() O(1) ».** Instructions en espace utilisateur par message, "
                    f"de {fx(f['instr_counts_07'][0])} à {fx(f['instr_counts_07'][-1])} connexions : ")
                 + f"07 ×{fx(g7, '.2f')}{tr(',', ' ;')} 06 ×{fx(g6, '.2f')}"
                 + (tr(f", 05 ×{fx(g5, '.2f')} (to {fx(f['instr_counts_05'][-1])})",
                       f" ; 05 ×{fx(g5, '.2f')} (jusqu'à {fx(f['instr_counts_05'][-1])})") if g5 else "")
                 + f"{tr(':', ' :')} {claim(g7 < 1.2 < g6)}.")
    mem = f["memory"]
    if ("02", 1000) in mem and ("03", 1000) in mem and ("07", 10000) in mem:
        def both(key, digits):
            m = mem[key]
            k = m.get("KernelStack_per_conn_kib")
            return (f"{n(m['pss_per_conn_kib'], digits)} KiB"
                    + (f" + {n(k + m['PageTables_per_conn_kib'], 1)} KiB {tr('in the kernel', 'dans le noyau')}"
                       if k is not None else ""))

        def per(ch, figure):
            return tr(f"{ch} {figure}", f"{figure} pour {ch}")
        L.append(tr(f"- **\"Mémoire: fork élevée, threads moyenne, epoll faible\".** Per connection, user space (PSS) "
                    "and the kernel's stacks and page tables, which PSS leaves out: "
                    f"{per('02', both(('02', 1000), 1))}, {per('03', both(('03', 1000), 1))}, "
                    f"{per('07', both(('07', 10000), 2))}: holds, and the kernel's share widens the gap: a process's page "
                    "tables are its largest cost.",
                    f"- **« Mémoire : fork élevée, threads moyenne, epoll faible ».** Par connexion, en espace "
                    "utilisateur (PSS) et en piles et tables des pages du noyau, que le PSS laisse de côté : "
                    f"{per('02', both(('02', 1000), 1))} ; {per('03', both(('03', 1000), 1))} ; "
                    f"{per('07', both(('07', 10000), 2))} : "
                    "l'affirmation tient, et la part du noyau creuse l'écart : les tables des pages d'un processus "
                    "sont son plus gros coût."))
    cn = f["connect"]
    if all(ch in cn for ch in ("02", "03", "04", "07")):
        cpu = {ch: cn[ch]["server_cpu_s_per_1k_conns"] for ch in ("02", "03", "04", "07")}
        L.append(tr("- **\"CPU: fork élevé, threads moyen, epoll faible\"**, for short connections (server CPU per "
                    "1,000 connections): ",
                    "- **« CPU : fork élevé, threads moyen, epoll faible »**, pour des connexions courtes (CPU du "
                    "serveur pour 1 000 connexions) : ")
                 + ", ".join(tr(f"{ch} {n(cpu[ch] * 1000)} ms", f"{n(cpu[ch] * 1000)} ms pour {ch}") for ch in cpu)
                 + tr(f": {verdict(cpu['02'] > cpu['03'] > cpu['07'])}; a process per connection costs "
                      f"{fx(ratio(cpu['02'], cpu['07']), '.1f')}× the event loop's CPU, a thread "
                      f"{fx(ratio(cpu['03'], cpu['07']), '.1f')}×, a pool of threads made in advance "
                      f"{fx(ratio(cpu['04'], cpu['07']), '.1f')}×.",
                      f" : {claim(cpu['02'] > cpu['03'] > cpu['07'])} ; un processus par connexion coûte "
                      f"{fx(ratio(cpu['02'], cpu['07']), '.1f')}× le CPU de la boucle événementielle, un thread "
                      f"{fx(ratio(cpu['03'], cpu['07']), '.1f')}×, un pool de threads créés à l'avance "
                      f"{fx(ratio(cpu['04'], cpu['07']), '.1f')}×."))
    k = f["peer_clients"]
    if f["07_vs_node"] and f["07_vs_asyncio"]:
        L.append(tr(f"- **Against the event loops people use**, at {fx(k)} busy connections: 07 echoes "
                    f"{fx(f['07_vs_node'], '.2f')}× the messages of Node.js and {fx(f['07_vs_asyncio'], '.2f')}× those "
                    f"of Python asyncio; per message, Node.js spends {fx(f['07_cpu_vs_node'], '.1f')}× 07's server CPU "
                    f"and asyncio {fx(f['07_cpu_vs_asyncio'], '.1f')}×. With one core for the server and one for the "
                    "load generator, the fastest servers are held back by the client: the CPU ratio is the fairer one.",
                    f"- **Face aux boucles événementielles utilisées en pratique**, à {fx(k)} connexions en activité : "
                    f"07 renvoie en écho {fx(f['07_vs_node'], '.2f')}× les messages de Node.js et "
                    f"{fx(f['07_vs_asyncio'], '.2f')}× ceux de Python asyncio ; par message, Node.js dépense "
                    f"{fx(f['07_cpu_vs_node'], '.1f')}× le CPU du serveur de 07, et asyncio "
                    f"{fx(f['07_cpu_vs_asyncio'], '.1f')}×. Avec un cœur pour le serveur et un pour le générateur de "
                    "charge, les serveurs les plus rapides sont freinés par le client : c'est le rapport de CPU qui "
                    "est le plus juste."))
    return L


MODELS = (("02", "Fork"), ("03", "Threads"), ("05", "select"), ("06", "poll"), ("07", "epoll"))


def region_tables(f, doc):
    """The text's two comparison tables, with the reference run's figures in their cells."""
    ppf, nofile = f["pingpong"], doc["machine"]["nofile"]
    not_run = tr("not run", "non mesuré")
    L = [tr("*Performance selon le nombre de clients*, measured: messages per second in ping-pong (one "
            "64-byte message in flight per connection; the load generator on the other core).",
            "*Performance selon le nombre de clients*, mesurée : messages par seconde en ping-pong (un message de "
            "64 octets en transit par connexion ; le générateur de charge sur l'autre cœur)."), "",
         "| clients | " + " | ".join(f"{name} ({ch})" for ch, name in MODELS) + " |",
         "|---|" + "---|" * len(MODELS)]
    for c in (10, 100, 1000, 10000, 100000):
        cells = []
        for ch, _ in MODELS:
            x = ppf.get((ch, c))
            if x:
                bad = x["timeouts"] + x["refused"] + x["bytes_wrong"]
                cells.append(n(x["msgs_per_s"]) + (f" ⚠ {fx(bad)} {tr('failed', 'en échec')}" if bad else ""))
            elif c == 100000:
                cells.append(not_run)
            elif ch == "05" and c > 1000:
                cells.append("impossible (FD_SETSIZE)")
            else:
                cells.append(not_run)
        L.append(f"| {fx(c)} | " + " | ".join(cells) + " |")
    x = ppf.get(("02", 10000))
    L += ["", (tr("At 10,000, 02's failures are its own refusals: it keeps at most 1,024 children (a guard "
                  "against a fork bomb) and turns the rest away. ",
                  "À 10 000, les échecs de 02 sont ses propres refus : il garde au plus 1 024 processus fils (une "
                  "protection contre une bombe fork) et refuse les autres. ") if x and x["refused"] else "")
          + tr(f"Not run: 100,000 anywhere (one process may hold {fx(nofile)} descriptors here, and one source "
               "address has some 28,000 ports towards one server port).",
               f"Pas de mesure à 100 000, pour aucun serveur (un processus peut détenir ici {fx(nofile)} descripteurs, "
               "et une adresse source dispose de quelque 28 000 ports vers un même port du serveur)."), ""]
    mem, cn = f["memory"], f["connect"]

    def memory(ch):
        m = [x for (h, _), x in mem.items() if h == ch]
        if m:
            return f"{n(m[0]['pss_per_conn_kib'], 2 if m[0]['pss_per_conn_kib'] < 1 else 1)} KiB"
        return (tr("as 07 (the same connection buffers)", "comme 07 (les mêmes tampons de connexion)")
                if ch in ("05", "06") else "–")

    def kernel(ch):
        m = [x for (h, _), x in mem.items() if h == ch]
        if m and m[0].get("KernelStack_per_conn_kib") is not None:
            return f"{n(m[0]['KernelStack_per_conn_kib'] + m[0]['PageTables_per_conn_kib'], 1)} KiB"
        return tr("as 07", "comme 07") if ch in ("05", "06") else "–"

    def switches(ch):
        x = ppf.get((ch, 1000))
        if x and x.get("voluntary_switches_per_msg") is not None:
            return fx(x["voluntary_switches_per_msg"] + x["involuntary_switches_per_msg"], ".2f")
        return "–"

    def most(ch):
        ok = [c for (h, c), x in ppf.items() if h == ch and not (x["timeouts"] or x["refused"] or x["bytes_wrong"])]
        return f"{fx(max(ok))} {tr('served', 'servies')}" if ok else "–"

    def cpu_msg(ch):
        x = ppf.get((ch, 1000))
        return f"{n(x['server_cpu_s_per_100k'], 2)} s" if x else "–"

    def cpu_conn(ch):
        x = cn.get(ch)
        return f"{n(x['server_cpu_s_per_1k_conns'] * 1000)} ms" if x else "–"
    rows = ((tr("Scalability: most ping-pong connections measured",
                "Scalabilité : le plus grand nombre de connexions mesuré en ping-pong"), most),
            (tr("Memory per idle connection (PSS)", "Mémoire par connexion inactive (PSS)"), memory),
            (tr("Kernel stacks and page tables per idle connection",
                "Piles noyau et tables des pages par connexion inactive"), kernel),
            (tr("Context switches per message at 1,000 connections",
                "Changements de contexte par message à 1 000 connexions"), switches),
            (tr("CPU per 100,000 messages at 1,000 connections", "CPU pour 100 000 messages à 1 000 connexions"), cpu_msg),
            (tr("CPU per 1,000 short connections", "CPU pour 1 000 connexions courtes"), cpu_conn))
    L += [tr("*Tableau Récapitulatif*, the rows that can be measured:",
             "*Tableau Récapitulatif*, les lignes qui se mesurent :"), "",
          "| | " + " | ".join(f"{name} ({ch})" for ch, name in MODELS) + " |",
          "|---|" + "---|" * len(MODELS)]
    L += [f"| {label} | " + " | ".join(cell(ch) for ch, _ in MODELS) + " |" for label, cell in rows]
    return L


# The text's decision tree: a point measured in each branch, the branch as the text writes it, its choice (in
# French, the text's own words), the chapters that make that choice.
TREE = ((10, "< 50 clients", ("fork() (simplicité)", "fork() (simplicité)"), ("02",)),
        (100, "50-500 clients", ("threads or poll()", "Threads ou poll()"), ("03", "06")),
        (1000, "500-10 000 clients", ("epoll() or a pool of threads", "epoll() ou threads avec pool"), ("07", "04")),
        (10000, "> 10 000 clients", ("epoll() and an event-driven design", "epoll() + architecture événementielle"),
         ("07",)))


def region_tree(f, doc):
    """The text's decision tree, its thresholds measured (ping-pong at one point of each branch)."""
    L = [tr("| the text's branch | measured at | its choice | messages/s (p99) | the fastest there | messages/s (p99) |",
            "| la branche du texte | mesurée à | son choix | messages/s (p99) | le plus rapide à ce niveau | "
            "messages/s (p99) |"),
         "|---|---|---|---|---|---|"]
    shares, bests = [], []
    for c, branch, choice, chs in TREE:
        row = {h: x for (h, k), x in f["pingpong"].items() if k == c and h in NAMES and h not in ("node", "asyncio")}
        if not row:
            continue
        best = max(row, key=lambda h: row[h]["msgs_per_s"])
        picked = tr("; ", " ; ").join(f"{ch}{tr(':', ' :')} {n(row[ch]['msgs_per_s'])} ({ms(row[ch]['p99_us'])})"
                                      for ch in chs if ch in row) or tr("not run", "non mesuré")
        L.append(f"| {branch} | {fx(c)} | {tr(*choice)} | {picked} | {NAMES[best]} | {n(row[best]['msgs_per_s'])} "
                 f"({ms(row[best]['p99_us'])}) |")
        bests.append(best)
        top = max((row[ch]["msgs_per_s"] for ch in chs if ch in row), default=0)
        shares.append(tr(f"{fx(100 * top / row[best]['msgs_per_s'], '.0f')}% at {fx(c)}",
                         f"{fx(100 * top / row[best]['msgs_per_s'], '.0f')} % à {fx(c)}"))
    loops_lead = all(b in ("05", "06", "07", "08") for b in bests)
    L += ["", tr("The text's best choice in each branch reaches, of the fastest server's messages per second: ",
                 "Dans chaque branche, le meilleur choix du texte atteint cette part des messages par seconde du "
                 "serveur le plus rapide : ")
          + ", ".join(shares) + "."
          + (tr(" An event loop is the fastest at every size measured, so the thresholds are not cut-offs where "
                "speed changes hands: below 50 the text picks fork for its simplicity, not its speed, which is a fair "
                "reason when isolation matters (next list).",
                " Une boucle événementielle est la plus rapide à chaque taille mesurée : les seuils ne sont donc pas "
                "des points où la vitesse change de camp. En dessous de 50, le texte choisit fork pour sa simplicité, "
                "non pour sa vitesse, ce qui est une raison valable quand l'isolation compte (liste suivante).")
             if loops_lead else "")]
    return L


REGIONS = {"tree": region_tree, "tables": region_tables, "01": region_01, "02": region_02, "03": region_03, "04": region_04, "05": region_05, "06": region_06,
           "07": region_07, "08": region_08, "summary": region_summary}

# COURSE.md's headings and COURSE.fr.md's (fixed in the translators' brief): a region's link to a heading of
# the course points, in French, to the French heading's anchor.
FRENCH_HEADINGS = {
    "The text, part by part": "Le texte, partie par partie",
    "What every server does (the contract)": "Ce que fait chaque serveur (le contrat)",
    "How the harness grades": "Comment le banc de test note",
    "Writing the chapters yourself": "Écrire les chapitres vous-même",
    "01-iterative — one client at a time": "01-iterative — un client à la fois",
    "02-fork — a child process per client": "02-fork — un processus fils par client",
    "03-threads — a thread per client": "03-threads — un thread par client",
    "04-threadpool — a fixed pool and a bounded queue": "04-threadpool — un pool fixe et une file bornée",
    "05-select — one thread, select()": "05-select — un seul thread, select()",
    "06-poll — one thread, poll()": "06-poll — un seul thread, poll()",
    "07-epoll — one thread, epoll (C10K)": "07-epoll — un seul thread, epoll (C10K)",
    "08-reuseport-hybrid — a master and N epoll workers": "08-reuseport-hybrid — un maître et N workers epoll",
    "Comparing the models": "Comparer les modèles",
    "Choosing a model": "Choisir un modèle",
    "In short": "En bref",
    "Where the text is wrong or dated": "Où le texte se trompe ou a vieilli",
    "What the measurements say": "Ce que disent les mesures",
    "Where the text's examples fall short": "Où les exemples du texte sont insuffisants",
}


def anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped (accents kept), each space a '-'."""
    return "#" + re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


FRENCH_ANCHORS = {anchor(en): anchor(fr) for en, fr in FRENCH_HEADINGS.items()}
# Files whose French twin a French link points to; every other file is linked as it is.
TWINS = re.compile(r"^(?P<dir>(?:[\w.-]+/)*)(?P<name>COURSE|README|CONTRACT|hints)\.md(?P<anchor>#.*)?$")


def french_anchor(target):
    """The French anchor of a link to one of COURSE.md's headings (English or already French)."""
    if target in FRENCH_ANCHORS.values():
        return target
    if target not in FRENCH_ANCHORS:
        sys.exit(f"course.py: a region links to {target}, which is no heading of COURSE.md that FRENCH_HEADINGS knows")
    return FRENCH_ANCHORS[target]


def french_links(body):
    """A French region's links: COURSE.md's headings to COURSE.fr.md's, COURSE.md, README.md, CONTRACT.md and
    hints.md to their French twins. A link this cannot place stops the writer rather than point nowhere."""
    def one(m):
        text, target = m.group(1), m.group(2)
        if target.startswith("#"):
            return f"{text}({french_anchor(target)})"
        t = TWINS.match(target)
        if not t:
            return m.group(0)
        if t.group("name") == "COURSE" and not t.group("dir"):
            return f"{text}({french_anchor(t.group('anchor'))})" if t.group("anchor") else f"{text}(COURSE.fr.md)"
        if t.group("anchor"):
            sys.exit(f"course.py: a region links to {target}: its French twin's anchor is not known here")
        return f"{text}({t.group('dir')}{t.group('name')}.fr.md)"
    return re.sub(r"(\[[^\]]*\])\(([^)\s]+)\)", one, body)


def render(doc, lang="en"):
    """Every region's text in one language, from one run's results."""
    global LANG
    f = report.figures(doc)
    LANG = lang
    try:
        # None: a figure not measured, left out; "": a blank line (between a paragraph and a table).
        bodies = {name: "\n".join(x for x in fn(f, doc) if x is not None).strip("\n") + "\n"
                  for name, fn in REGIONS.items()}
    finally:
        LANG = "en"
    return {name: french_links(body) for name, body in bodies.items()} if lang == "fr" else bodies


def update(path, bodies, check):
    """Rewrite (or only compare) the regions of one file; 0 when it was up to date or is now, 1 otherwise."""
    name = os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path
    text = open(path, encoding="utf-8").read()
    seen, stale = set(), []

    def fill(m):
        region = m.group("name")
        seen.add(region)
        if region not in bodies:
            sys.exit(f"course.py: {name} has a region '{region}' that nothing writes")
        if m.group("body") != bodies[region]:
            stale.append(region)
        start, end = m.start("body") - m.start(), m.end("body") - m.start()
        return m.group(0)[:start] + bodies[region] + m.group(0)[end:]

    new = REGION.sub(fill, text)
    missing = sorted(set(bodies) - seen)
    if missing:
        print(f"course.py: {name} has no region for {', '.join(missing)}", file=sys.stderr)
        return 1
    if check:
        if stale:
            print(f"course.py: {name}'s figures are stale in {', '.join(stale)}: run harness/bench/course.py",
                  file=sys.stderr)
            return 1
        return 0
    if new != text:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(new)
        print(f"course.py: rewrote {', '.join(stale)} in {name}")
    return 0


def main(argv):
    check, src, langs, file = False, os.path.join(HERE, "reference"), None, None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--check":
            check = True
        elif a in ("--from", "--lang", "--file") and args:
            v = args.pop(0)
            if a == "--from":
                src = v
            elif a == "--file":
                file = v
            elif v in FILES:
                langs = [v]
            else:
                sys.exit(__doc__)
        else:
            sys.exit(__doc__)
    if file and not langs:
        sys.exit("course.py: --file needs --lang, to say which language to write into it")
    if langs is None:
        langs = [lang for lang in FILES if lang == "en" or os.path.exists(os.path.join(ROOT, FILES[lang]))]
    with open(os.path.join(src, "results.json")) as fh:
        doc = json.load(fh)
    rc = 0
    for lang in langs:
        path = file or os.path.join(ROOT, FILES[lang])
        if not os.path.exists(path):
            sys.exit(f"course.py: {path} does not exist")
        rc |= update(path, render(doc, lang), check)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
