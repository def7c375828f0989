#!/usr/bin/env python3
"""What the harness observes of a running server from outside, through /proc.

    proctool.py pids PGID        the live processes of the server's process group, one per line
    proctool.py fds PID          open descriptors of one process
    proctool.py zombies PGID     zombie processes in the group (children nobody reaped)
    proctool.py threads PID      threads of one process
    proctool.py cpu PGID         CPU seconds (user + system) used so far by the group's processes
    proctool.py rss PGID         resident memory of the whole group, KiB
    proctool.py children PID     direct children of PID (alive or zombie), one per line

A process that vanishes while it is being read is simply not counted.
"""

import os
import sys

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def group(pgid):
    """(pid, fields) for every process whose process group is pgid."""
    out = []
    for pid in all_pids():
        try:
            f = stat_fields(pid)
        except (OSError, ValueError):
            continue
        if int(f[2]) == pgid:  # field 5 of stat: pgrp
            out.append((pid, f))
    return out


def main():
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        sys.exit(__doc__)
    what, n = sys.argv[1], int(sys.argv[2])
    try:
        if what == "pids":
            for pid, f in group(n):
                if f[0] != "Z":
                    print(pid)
        elif what == "fds":
            print(len(os.listdir(f"/proc/{n}/fd")))
        elif what == "zombies":
            print(sum(1 for _, f in group(n) if f[0] == "Z"))
        elif what == "threads":
            print(len(os.listdir(f"/proc/{n}/task")))
        elif what == "cpu":
            print("%.3f" % (sum(int(f[11]) + int(f[12]) for _, f in group(n)) / TICKS))
        elif what == "rss":
            total = 0
            for pid, _ in group(n):
                try:
                    with open(f"/proc/{pid}/status") as st:
                        total += next((int(l.split()[1]) for l in st if l.startswith("VmRSS:")), 0)
                except OSError:
                    pass
            print(total)
        elif what == "children":
            for pid in all_pids():
                try:
                    if int(stat_fields(pid)[1]) == n:
                        print(pid)
                except (OSError, ValueError):
                    pass
        else:
            sys.exit(__doc__)
    except FileNotFoundError:
        sys.exit(f"proctool: process {n} is gone")


if __name__ == "__main__":
    main()
