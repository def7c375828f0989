#!/usr/bin/env python3
"""A timeline of one echo server serving N clients that arrive at the same moment.

    timeline.py PORT [--clients 12] [--session 1.0] [--timeout S] [--limit S] [--out FILE.tsv]

N client threads wait on a barrier, then all connect to 127.0.0.1:PORT at once.  Each
sends a 16-byte message naming itself and a sequence number, reads the echo back and
checks it, then sends one every 0.1 s, and closes --session seconds after its FIRST echo
(so a client served late still gets a full session).  Times are seconds since the barrier
released the clients:

    t_connect  connect() returned
    t_first    the first echo came back (the server started serving this client)
    t_done     the last echo came back, just before close

Output (to --out or stdout): a TSV with the header `client t_connect t_first t_done error`,
one row per client, times with 3 decimals; a time never reached and an empty error are `-`.
A one-line summary goes to stderr.  Draw it with timeline.gp (see there).

Every wait is bounded: --timeout for any one connect or echo (default: 30 s, or more when
the clients could be served one after another for longer: N x session + 10 s), and --limit
for the whole run (default: N x (session + 1) + 30 s).  A client that fails records why.

Exit 0 if every client completed its session, 1 otherwise, 2 on bad usage (one line on
stderr).  Python 3 standard library only.
"""

import argparse
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
INTERVAL = 0.1  # seconds between two messages of one client


class ClientFailed(Exception):
    """This client could not complete its session: the message says what happened."""


class Usage(argparse.ArgumentParser):
    def error(self, message):
        print(f"timeline.py: {message} (usage: timeline.py PORT [--clients N] [--session S] "
              f"[--timeout S] [--limit S] [--out FILE.tsv])", file=sys.stderr)
        sys.exit(2)


class Client:
    def __init__(self, number):
        self.number = number
        self.t_connect = self.t_first = self.t_done = None
        self.error = None
        self.completed = False


class Run:
    """What every client thread shares: the start instant and the bounds."""

    def __init__(self, port, clients, session, timeout, limit):
        self.port, self.session, self.timeout, self.limit = port, session, timeout, limit
        self.start = None       # time.monotonic() when the barrier released the clients
        self.deadline = None    # start + limit
        self.barrier = threading.Barrier(clients, action=self._go)

    def _go(self):  # runs once, in the last thread to arrive, before any is released
        self.start = time.monotonic()
        self.deadline = self.start + self.limit

    def since_start(self):
        return time.monotonic() - self.start

    def timed_out(self, what):
        """The failure for a wait that timed out: the per-wait --timeout, or the global --limit."""
        if time.monotonic() >= self.deadline - 0.001:
            return ClientFailed(f"{what}: global limit of {self.limit:g} s reached")
        return ClientFailed(f"{what}: no echo within {self.timeout:g} s" if what != "connect"
                            else f"connect: no answer within {self.timeout:g} s")

    def bound(self, what):
        """The timeout for one wait: --timeout, cut short by the global --limit."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ClientFailed(f"{what}: global limit of {self.limit:g} s reached")
        return min(self.timeout, left)


def message(client, seq):
    return f"client {client:02d} #{seq % 10000:04d}\n".encode()  # 16 bytes


def echo(run, sock, client, seq):
    """Send message seq and read exactly its echo back, within the bounds."""
    msg = message(client, seq)
    what = f"message {seq}"
    try:
        sock.settimeout(run.bound(what))
        sock.sendall(msg)
        got = bytearray()
        while len(got) < len(msg):
            sock.settimeout(run.bound(what))
            chunk = sock.recv(len(msg) - len(got))
            if not chunk:
                raise ClientFailed(f"{what}: server closed the connection after {len(got)} of "
                                   f"{len(msg)} bytes of the echo")
            got += chunk
    except socket.timeout:
        raise run.timed_out(what)
    except OSError as e:
        raise ClientFailed(f"{what}: {e.strerror or e}")
    if bytes(got) != msg:
        raise ClientFailed(f"{what}: echo mismatch: sent {msg!r}, got {bytes(got)!r}")


def serve_one(run, c):
    try:
        run.barrier.wait(timeout=30)
    except threading.BrokenBarrierError:
        c.error = "the clients never all reached the start barrier"
        return
    sock = None
    try:
        try:
            sock = socket.create_connection((HOST, run.port), timeout=run.bound("connect"))
        except socket.timeout:
            raise run.timed_out("connect")
        except OSError as e:
            raise ClientFailed(f"connect to {HOST}:{run.port}: {e.strerror or e}")
        c.t_connect = run.since_start()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        echo(run, sock, c.number, 0)
        first = time.monotonic()
        c.t_first = first - run.start
        c.t_done = c.t_first
        # The session: one message every INTERVAL on a fixed schedule from the first echo,
        # the last one exactly `session` seconds after it.
        seq = 0
        while run.session > 0:
            seq += 1
            offset = min(seq * INTERVAL, run.session)
            if run.session - offset < 1e-6:
                offset = run.session
            pause = first + offset - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            echo(run, sock, c.number, seq)
            c.t_done = run.since_start()
            if offset >= run.session:
                break
        c.completed = True
    except ClientFailed as e:
        c.error = f"at {run.since_start():.3f} s: {e}"
        if not c.completed:
            c.t_done = None  # t_done is the end of a completed session only
    finally:
        if sock is not None:
            sock.close()


def fmt(t):
    return "-" if t is None else f"{t:.3f}"


def clean(text):
    return " ".join(str(text).split()) or "-"


def main():
    p = Usage(description=__doc__.splitlines()[0])
    p.add_argument("port", type=int)
    p.add_argument("--clients", type=int, default=12, help="clients that connect at once (12)")
    p.add_argument("--session", type=float, default=1.0,
                   help="seconds each client stays, counted from its first echo (1.0)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds for any one connect or echo (30, or clients x session + 10 if more)")
    p.add_argument("--limit", type=float, default=None,
                   help="seconds for the whole run (clients x (session + 1) + 30)")
    p.add_argument("--out", metavar="FILE.tsv", help="write the TSV here instead of stdout")
    a = p.parse_args()
    if not 1 <= a.port <= 65535:
        p.error(f"PORT must be 1..65535, not {a.port}")
    if not 1 <= a.clients <= 1000:
        p.error(f"--clients must be 1..1000, not {a.clients}")
    if not 0 <= a.session <= 3600:
        p.error(f"--session must be 0..3600 seconds, not {a.session:g}")
    timeout = a.timeout if a.timeout is not None else max(30.0, a.clients * a.session + 10)
    limit = a.limit if a.limit is not None else a.clients * (a.session + 1) + 30
    if not timeout > 0:
        p.error(f"--timeout must be positive, not {timeout:g}")
    if not limit > 0:
        p.error(f"--limit must be positive, not {limit:g}")
    out = sys.stdout
    if a.out:
        try:
            out = open(a.out, "w")
        except OSError as e:
            p.error(f"cannot write --out {a.out}: {e.strerror or e}")

    run = Run(a.port, a.clients, a.session, timeout, limit)
    clients = [Client(n) for n in range(1, a.clients + 1)]
    threads = [threading.Thread(target=serve_one, args=(run, c), daemon=True) for c in clients]
    for t in threads:
        t.start()
    # Every wait of a client is bounded by the global limit; the margin covers the barrier.
    end = time.monotonic() + limit + 35
    for t, c in zip(threads, clients):
        t.join(max(0.0, end - time.monotonic()))
        if t.is_alive():
            c.completed, c.t_done = False, None
            c.error = c.error or f"still running after the global limit of {limit:g} s"

    with out:
        out.write("client\tt_connect\tt_first\tt_done\terror\n")
        for c in clients:
            out.write(f"{c.number}\t{fmt(c.t_connect)}\t{fmt(c.t_first)}\t{fmt(c.t_done)}\t"
                      f"{clean(c.error or '-')}\n")
        out.flush()

    done = [c for c in clients if c.completed]
    last = max((c.t_done for c in done), default=None)
    summary = f"timeline: {len(done)}/{len(clients)} clients completed"
    if last is not None:
        summary += f", last echo at {last:.3f} s"
    failed = [c for c in clients if not c.completed]
    if failed:
        summary += f"; client {failed[0].number}: {clean(failed[0].error or 'failed')}"
    print(summary, file=sys.stderr)
    sys.exit(0 if not failed else 1)


if __name__ == "__main__":
    main()
