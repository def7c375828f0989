#!/usr/bin/env python3
"""Test clients for the lab's echo servers (Python 3 standard library only).

Each subcommand exercises one behaviour of a running server and exits 0 when
the server behaved, 1 with one line on stderr saying what was expected and
what came when it did not, 2 on bad usage.  Every wait is bounded.

    echo_client.py PORT probe [--seconds S]
    echo_client.py PORT short|binary|stream|pipeline|halfclose|halfclose-corked
    echo_client.py PORT halfclose-many [N]
    echo_client.py PORT parallel N
    echo_client.py PORT hold N --ready FILE [--seconds S]
    echo_client.py PORT served N --ready FILE [--wait S] [--seconds S]
    echo_client.py PORT drained --ready FILE [--seconds S]
    echo_client.py PORT concurrency serial|parallel [--busy K]
    echo_client.py PORT resets|churn|sessions|sigpipe|slowreader [...]

The host is 127.0.0.1 unless --host says otherwise.  What a student reads (a failure, what a
client saw) is in their language (harness/lib/i18n.py); the ready files hold figures, not words.
"""

import argparse
import asyncio
import pathlib
import random
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "lib"))
from i18n import _  # noqa: E402  (harness/lib/i18n.py: the grader's messages, translated)

HOST = "127.0.0.1"
TIMEOUT = 10.0  # seconds for any single expected reply; generous for valgrind


class CheckFailed(Exception):
    """The server did not behave: the message says what was expected and what came."""


class NoEcho(CheckFailed):
    """The probe's failure: the server echoes nothing at all (exit status 3, which harness/run's
    pre-flight tells from the other failures without reading the sentence)."""


def connect(port, timeout=TIMEOUT):
    try:
        s = socket.create_connection((HOST, port), timeout=timeout)
    except OSError as e:
        raise CheckFailed(_("could not connect to {host}:{port}: {error}").format(host=HOST, port=port, error=e.strerror or e))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s, n, what, timeout=TIMEOUT):
    """Read exactly n bytes within timeout seconds in total, or fail saying how many came."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            # TRANSLATORS: {what} names the client or the data ("a short line", "client 2").
            raise CheckFailed(_("{what}: expected {n} bytes back within {timeout:g} s, got {got}").format(
                what=what, n=n, timeout=timeout, got=len(buf)))
        s.settimeout(left)
        try:
            chunk = s.recv(min(n - len(buf), 1 << 20))
        except socket.timeout:
            continue
        except OSError as e:
            raise CheckFailed(_("{what}: connection failed after {got} of {n} bytes: {error}").format(
                what=what, got=len(buf), n=n, error=e.strerror or e))
        if not chunk:
            raise CheckFailed(_("{what}: server closed the connection after {got} of {n} bytes").format(
                what=what, got=len(buf), n=n))
        buf += chunk
    return bytes(buf)


def compare(what, expected, got):
    if expected == got:
        return
    at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    raise CheckFailed(_("{what}: {got} bytes came back for {sent} sent, first difference at offset {at}").format(
        what=what, got=len(got), sent=len(expected), at=at))


def expect_eof(s, what, timeout=TIMEOUT):
    s.settimeout(timeout)
    try:
        extra = s.recv(65536)
    except socket.timeout:
        raise CheckFailed(_("{what}: expected the server to close the connection within {timeout:g} s; it stayed open").format(
            what=what, timeout=timeout))
    except OSError as e:
        raise CheckFailed(_("{what}: expected a clean close (EOF), got {error}").format(what=what, error=e.strerror or e))
    if extra:
        raise CheckFailed(_("{what}: expected EOF, got {n} more bytes").format(what=what, n=len(extra)))


def payload(n, seed):
    """n pseudo-random bytes, NULs and high bytes included, reproducible from seed."""
    return random.Random(seed).randbytes(n)


# ---- one-connection checks ------------------------------------------------

def cmd_probe(a):
    """Does the server echo at all? One line, its echo within --seconds (harness/run's pre-flight)."""
    s = connect(a.port, timeout=a.seconds)
    msg = b"anybody there?\n"
    s.sendall(msg)
    try:
        got = recv_exactly(s, len(msg), _("a probe"), timeout=a.seconds)
    except CheckFailed:
        raise NoEcho(_("the server echoes nothing: a line sent to it got no reply within {seconds:g} s").format(
            seconds=a.seconds))
    if got != msg:  # an echo, if a wrong one: the echo check says what is wrong with it
        print(_("a probe came back altered: {got!r}").format(got=got))


def cmd_short(a):
    """A short line comes back, and nothing after it: a server that sends more than it received
    (its whole buffer) fails here, whatever chunks the bytes travel in."""
    s = connect(a.port)
    msg = b"hello, echo server\n"
    s.sendall(msg)
    what = _("a short line")
    got = recv_exactly(s, len(msg), what)
    s.settimeout(0.2)  # what a server sends right after the echo is there within 0.2 s
    try:
        while len(got) < 1 << 20 and (more := s.recv(1 << 16)):
            got += more
    except socket.timeout:
        pass
    except OSError:
        pass  # the connection's end is the other tests' business
    compare(what, msg, got)
    s.close()


def cmd_binary(a):
    s = connect(a.port)
    data = payload(64 * 1024, 1) + b"\0" * 512  # random bytes ending in a run of NULs
    sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
    sender.start()
    compare(_("64 KiB of random bytes with NULs"), data, recv_exactly(s, len(data), _("64 KiB binary")))
    sender.join(TIMEOUT)
    s.close()


def cmd_stream(a):
    """4 MiB sent while reading: a server that only echoes after reading everything, or that
    loses bytes under a full send buffer, fails here."""
    size = 4 * 1024 * 1024
    data = payload(size, 2)
    s = connect(a.port)
    s.setblocking(False)
    sent = 0
    got = bytearray()
    deadline = time.monotonic() + 60
    while len(got) < size:
        if time.monotonic() > deadline:
            raise CheckFailed(_("4 MiB stream: after 60 s, {sent} bytes sent and {echoed} echoed").format(
                sent=sent, echoed=len(got)))
        want_write = [s] if sent < size else []
        r, w, _x = select.select([s], want_write, [], 1.0)
        if w:
            try:
                sent += s.send(data[sent:sent + 262144])
            except BlockingIOError:
                pass
        if r:
            try:
                chunk = s.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError as e:
                raise CheckFailed(_("4 MiB stream: connection failed after {echoed} bytes echoed: {error}").format(
                    echoed=len(got), error=e.strerror))
            if not chunk:
                raise CheckFailed(_("4 MiB stream: server closed after {echoed} of {size} bytes").format(
                    echoed=len(got), size=size))
            got += chunk
    compare(_("4 MiB stream"), data, bytes(got))
    s.close()


def cmd_pipeline(a):
    msgs = [b"message %d of 1000 %s\n" % (i, b"x" * (i % 50)) for i in range(1000)]
    data = b"".join(msgs)
    s = connect(a.port)
    s.sendall(data)  # all 1,000 at once, before reading any reply
    what = _("1,000 pipelined messages")
    compare(what, data, recv_exactly(s, len(data), what))
    s.close()


def cmd_halfclose(a):
    """Half-close while the server still has output queued: send (without reading) until every
    buffer is full, up to 8 MiB, then shutdown(SHUT_WR), then read slowly through a small receive
    window.  The server reads our FIN while the kernel cannot take its output yet; it must send
    everything it owes before closing, then close (EOF)."""
    data = payload(8 * 1024 * 1024, 3)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connect: a small window
    s.settimeout(TIMEOUT)
    try:
        s.connect((HOST, a.port))
    except OSError as e:
        raise CheckFailed(_("could not connect to {host}:{port}: {error}").format(host=HOST, port=a.port, error=e.strerror or e))
    s.setblocking(False)
    sent, stalled_since = 0, None
    while sent < len(data):
        try:
            sent += s.send(data[sent:sent + 262144])
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 0.3:
                break  # every buffer on the way is full
            time.sleep(0.01)
    s.setblocking(True)
    s.shutdown(socket.SHUT_WR)
    what = _("half-close ({sent} bytes sent unread, then shutdown(SHUT_WR))").format(sent=sent)
    got = bytearray()
    deadline = time.monotonic() + 60
    s.settimeout(TIMEOUT)
    while len(got) < sent and time.monotonic() < deadline:
        try:
            chunk = s.recv(16384)
        except OSError as e:
            raise CheckFailed(_("{what}: connection failed after {got} bytes: {error}").format(
                what=what, got=len(got), error=e.strerror or e))
        if not chunk:
            break
        got += chunk
        time.sleep(0.002)  # a slow reader: the server's output stays queued
    compare(what, data[:sent], bytes(got))
    expect_eof(s, _("half-close: after echoing everything"))
    s.close()


def cmd_halfclose_corked(a):
    """8 KB and our FIN in one segment (TCP_CORK), so the server learns of the half-close before
    it has read a byte: it must still read, echo everything, then close."""
    data = payload(8000, 4)
    s = connect(a.port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # flushes the cork: data and FIN leave together
    what = _("half-close in the same segment as the data")
    compare(what, data, recv_exactly(s, len(data), what))
    expect_eof(s, _("{what}: after echoing everything").format(what=what))
    s.close()


# halfclose-many.  Set on each socket before connect(): a 1,000-byte MSS (Linux sizes the server's
# send buffer from the MSS and its congestion window) and a 2 KB receive buffer (our window).  The
# kernel then holds only some 40-50 KB of a connection's echo while we read nothing (40.5-49.5 KB
# measured, Linux 6.18, bbr and reno), where it would hold megabytes that vary with autotuning.
HC_MSS, HC_RCVBUF = 1000, 2048
# What the connections send, spread evenly over this range: most amounts end past what the kernel
# holds, by less than the event-loop servers' 64 KiB output buffer; none by more than some 90 KB,
# which a blocking server's receive buffer and our send buffer hold with room to spare (800 KB).
HC_SIZES = (48_000, 128_000)
HC_SETTLE = 0.2   # seconds from a connection's FIN to its first read: the server reads the FIN first
HC_UNSTICK = 1.0  # seconds of nothing moving while still sending: see cmd_halfclose_many


class _Sender:
    """One connection of halfclose-many: its bytes, how many went out, how many came back."""

    def __init__(self, no, sock, data):
        self.no, self.sock, self.data = no, sock, data
        self.sent, self.got, self.read_at = 0, bytearray(), None


def cmd_halfclose_many(a):
    """n connections, each with a different amount: send it all, then shutdown(SHUT_WR), then
    (HC_SETTLE later) read everything back, every byte checked, then EOF.  Not a byte is read before
    the FIN, so the kernel holds a fixed amount of the echo (see HC_MSS); most amounts end past it
    by less than an event-loop server's 64 KiB output buffer, so the server reads their FIN with
    the rest still in that buffer, however the processes are scheduled.  A server that closes as
    soon as recv() returns 0 drops it, and fails here every time.

    A blocking server (01-04) stops reading while its send() waits for us; the rest of the amount
    waits in its receive buffer and our send buffer, so our sending completes.  Were they ever too
    small (other kernel settings), nothing would move: after HC_UNSTICK s the connections still
    sending half-close where they are, and are held to what they sent."""
    n = a.n
    lo, hi = HC_SIZES
    sel = selectors.DefaultSelector()
    sending, settling, reading = set(), set(), set()
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, HC_RCVBUF)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, HC_MSS)
        s.settimeout(TIMEOUT)
        try:
            s.connect((HOST, a.port))
        except OSError as e:
            raise CheckFailed(_("connection {no} of {n}: could not connect to {host}:{port}: {error}").format(
                no=i + 1, n=n, host=HOST, port=a.port, error=e.strerror or e))
        s.setblocking(False)
        c = _Sender(i + 1, s, payload(lo + (hi - lo) * i // max(n - 1, 1) + 7 * i, 500 + i))
        sending.add(c)
        sel.register(s, selectors.EVENT_WRITE, c)

    def where(c):
        return _("connection {no} of {n}").format(no=c.no, n=n)

    def half_close(c, now):
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            raise CheckFailed(_("{where}: shutdown(SHUT_WR) failed after {sent:,} bytes sent: {error}").format(
                where=where(c), sent=c.sent, error=e.strerror or e))
        sel.unregister(c.sock)
        sending.discard(c)
        settling.add(c)
        c.read_at = now + HC_SETTLE

    moved = start = time.monotonic()
    while sending or settling or reading:
        now = time.monotonic()
        for c in [c for c in settling if c.read_at <= now]:
            settling.discard(c)
            reading.add(c)
            sel.register(c.sock, selectors.EVENT_READ, c)
        if now - moved > TIMEOUT or now - start > 60:
            c = min(sending | settling | reading, key=lambda c: c.no)
            if c in sending:
                raise CheckFailed(_("{where}: sending stalled at {sent:,} of {size:,} bytes for {seconds:.0f} s").format(
                    where=where(c), sent=c.sent, size=len(c.data), seconds=now - moved))
            raise CheckFailed(_("{where}: {got:,} of {sent:,} bytes came back, then nothing for {seconds:.0f} s after "
                                "the client half-closed").format(where=where(c), got=len(c.got), sent=c.sent,
                                                                 seconds=now - moved))
        if sending and now - moved > HC_UNSTICK:
            for c in list(sending):
                half_close(c, now)
        wake = min((c.read_at for c in settling), default=now + 0.1)
        for key, _events in sel.select(max(0.0, min(wake - now, 0.1))):
            c = key.data
            if c in sending:
                try:
                    c.sent += c.sock.send(memoryview(c.data)[c.sent:c.sent + 65536])
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise CheckFailed(_("{where}: sending failed after {sent:,} of {size:,} bytes: {error}").format(
                        where=where(c), sent=c.sent, size=len(c.data), error=e.strerror or e))
                moved = time.monotonic()
                if c.sent == len(c.data):
                    half_close(c, moved)
                continue
            try:
                chunk = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                raise CheckFailed(_("{where}: the connection failed after {got:,} of {sent:,} bytes came back: {error}").format(
                    where=where(c), got=len(c.got), sent=c.sent, error=e.strerror or e))
            moved = time.monotonic()
            if chunk:
                c.got += chunk
                if len(c.got) > c.sent:
                    raise CheckFailed(_("{where}: {got:,} bytes came back for {sent:,} sent").format(
                        where=where(c), got=len(c.got), sent=c.sent))
                continue
            if len(c.got) < c.sent:
                raise CheckFailed(_("{where}: the server closed after {got:,} of {sent:,} bytes once the client "
                                    "half-closed: output still pending in its buffer was dropped").format(
                    where=where(c), got=len(c.got), sent=c.sent))
            compare(where(c), c.data[:c.sent], bytes(c.got))
            reading.discard(c)
            sel.unregister(c.sock)
            c.sock.close()
    sel.close()


# ---- many connections ------------------------------------------------------

async def one_client(port, cid, rounds, sem_connect):
    """One client of a crowd: its own payloads of varying size, every byte checked."""
    async with sem_connect:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), TIMEOUT * 3)
    rng = random.Random(cid)
    for r in range(rounds):
        data = payload(rng.choice((1, 17, 512, 4096, 20000)), cid * 1000 + r)
        writer.write(data)
        await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(len(data)), TIMEOUT * 3)
        if got != data:
            raise CheckFailed(_("client {client}: round {round}: wrong bytes echoed").format(client=cid, round=r))
    writer.close()
    await writer.wait_closed()


async def crowd(port, n, rounds):
    sem = asyncio.Semaphore(200)  # connects in flight; the rest wait their turn
    tasks = [asyncio.create_task(one_client(port, i, rounds, sem)) for i in range(n)]
    done = await asyncio.gather(*tasks, return_exceptions=True)
    bad = [(i, e) for i, e in enumerate(done) if e is not None]
    if bad:
        i, e = bad[0]
        why = str(e) or type(e).__name__
        if isinstance(e, asyncio.IncompleteReadError):
            why = _("server closed the connection after {got} of {n} bytes").format(got=len(e.partial), n=e.expected)
        elif isinstance(e, asyncio.TimeoutError):
            why = _("no reply within the time limit")
        raise CheckFailed(_("{failed} of {n} parallel clients failed; first (client {client}): {why}").format(
            failed=len(bad), n=n, client=i, why=why))


def cmd_parallel(a):
    asyncio.run(crowd(a.port, a.n, a.rounds))


def stop_event():
    """An event set by SIGTERM or SIGINT: how the checks end a client that holds connections."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def hold_then_close(stop, a, socks, ready_text):
    """Write ready_text to the ready file, hold the connections until SIGTERM/SIGINT or
    --seconds, then close them all."""
    with open(a.ready, "w") as f:
        f.write(ready_text + "\n")
    stop.wait(a.seconds)
    for s in socks:
        s.close()


def cmd_hold(a):
    """Open N connections, check each one echoes, write the ready file, then hold them
    idle until SIGTERM/SIGINT or --seconds, and close them all."""
    socks = []
    stop = stop_event()
    for i in range(a.n):
        s = connect(a.port)
        socks.append(s)
        if a.verify:
            msg = b"hold %d\n" % i
            s.sendall(msg)
            what = _("held connection {no}").format(no=i)
            compare(what, msg, recv_exactly(s, len(msg), what))
    hold_then_close(stop, a, socks, str(len(socks)))


def cmd_served(a):
    """How many clients a server serves at once, seen from the clients: N connections each send a
    line at once; --wait seconds later, the number that got their echo back is written to the
    ready file ("K of N"); the connections are then held until SIGTERM/SIGINT or --seconds."""
    stop = stop_event()
    socks = [connect(a.port) for _ in range(a.n)]
    for i, s in enumerate(socks):
        s.sendall(b"served? %d\n" % i)
    got = {s: b"" for s in socks}
    deadline = time.monotonic() + a.wait
    while time.monotonic() < deadline:
        waiting = [s for s in socks if not got[s].endswith(b"\n")]
        if not waiting:
            break
        ready, _w, _x = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
        for s in ready:
            data = s.recv(100)
            if not data:
                raise CheckFailed(_("a client was disconnected after {got} bytes instead of being served or left waiting").format(
                    got=len(got[s])))
            got[s] += data
    served = sum(got[s].endswith(b"\n") for s in socks)
    hold_then_close(stop, a, socks, f"{served} of {a.n}")


def cmd_drained(a):
    """Leave the server idle after it had work to do: a half-close with output pending, a reset
    mid-stream, then a client whose output backed up in the server (it sends 8 MiB and reads
    nothing for half a second) and then drained (it reads it all back), held connected and idle.
    Writes the ready file, then holds that client until SIGTERM/SIGINT or --seconds."""
    stop = stop_event()

    def round_trip(s, data, what, wait_before_reading=0.0, half_close=False):
        def send():
            try:
                s.sendall(data)
                if half_close:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=send, daemon=True)
        t.start()
        time.sleep(wait_before_reading)
        compare(what, data, recv_exactly(s, len(data), what, timeout=30))
        t.join(30)

    s = connect(a.port)
    round_trip(s, payload(200_000, 7), _("a half-closing client"), half_close=True)
    s.settimeout(10)
    if s.recv(1) != b"":
        raise CheckFailed(_("a half-closing client got more than its bytes back, and no EOF"))
    s.close()
    s = connect(a.port)
    s.sendall(payload(100_000, 8))
    recv_exactly(s, 1000, _("a client about to reset"))
    abort(s)
    # A small receive buffer, set before connecting, and more than the kernel's buffers on both
    # sides can hold (the server's send buffer grows to 4 MiB): its output must back up.
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    held.settimeout(TIMEOUT)
    held.connect((HOST, a.port))
    round_trip(held, payload(8 << 20, 9), _("a client whose output backed up, then drained"), wait_before_reading=0.5)
    hold_then_close(stop, a, [held], "1")


def cmd_concurrency(a):
    """--busy K clients connect and get one echo each; then one more client sends a line.
    parallel: it must be answered within 1 s.  serial: it must NOT be answered while the K stay
    connected (we wait 1.5 s), and must be answered once one of them leaves."""
    first = []
    for i in range(a.busy):
        s = connect(a.port)
        msg = b"first %d\n" % i
        s.sendall(msg)
        compare(_("client {no}").format(no=i + 1), msg,
                recv_exactly(s, len(msg), _("client {no} (before the extra client)").format(no=i + 1)))
        first.append(s)
    extra = connect(a.port)
    msg = b"are you there?\n"
    t0 = time.monotonic()
    extra.sendall(msg)
    if a.mode == "parallel":
        # Two tries with a fresh client each, while the first ones stay connected: a server that
        # serves one client at a time fails both, and a machine busy for a moment does not fail
        # a correct server.
        for attempt in (1, 2):
            try:
                got = recv_exactly(extra, len(msg), _("extra client"), timeout=1.0)
                break
            except CheckFailed:
                if attempt == 2:
                    raise CheckFailed(_("with {busy} client(s) connected and idle, another client got no echo within "
                                        "1 s, twice: the server serves one client at a time").format(busy=a.busy))
                extra.close()
                extra = connect(a.port)
                t0 = time.monotonic()
                extra.sendall(msg)
        compare(_("extra client"), msg, got)
        print(_("answered in {ms:.1f} ms (try {attempt})").format(ms=(time.monotonic() - t0) * 1000, attempt=attempt))
    else:
        extra.settimeout(1.5)
        try:
            early = extra.recv(100)
        except socket.timeout:
            early = None
        if early:
            raise CheckFailed(_("client {no} was answered after {ms:.0f} ms while {busy} other(s) were connected: "
                                "expected it to wait its turn").format(
                no=a.busy + 1, ms=(time.monotonic() - t0) * 1000, busy=a.busy))
        if early == b"":
            raise CheckFailed(_("client {no} was disconnected instead of waiting its turn").format(no=a.busy + 1))
        first[0].close()
        t1 = time.monotonic()
        compare(_("waiting client"), msg, recv_exactly(extra, len(msg),
                _("client {no}, after one of the first {busy} left").format(no=a.busy + 1, busy=a.busy), timeout=5.0))
        print(_("waited its turn; answered {ms:.1f} ms after a slot freed").format(ms=(time.monotonic() - t1) * 1000))
    for s in first[1:] if a.mode == "serial" else first:
        s.close()
    extra.close()


# ---- robustness --------------------------------------------------------------

def abort(s):
    """Close with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def cmd_resets(a):
    """Peers that reset mid-stream: send data, read part of the echo, then RST."""
    for i in range(a.n):
        s = connect(a.port)
        s.sendall(payload(200000, i))
        recv_exactly(s, 1000, _("reset client {no}").format(no=i))
        abort(s)
    cmd_short(a)


def cmd_churn(a):
    """Connect-then-close, a.n times, half of them with an RST; then the server must still echo."""
    for i in range(a.n):
        s = connect(a.port)
        if i % 2:
            abort(s)
        else:
            s.close()
    cmd_short(a)


def cmd_sessions(a):
    """a.n whole sessions one after the other (a line, its echo, a half-close, the server's close):
    never more than one at a time, so a server that runs one thread per client has at most a
    couple alive whatever the machine's load."""
    msg = b"one session\n"
    for i in range(a.n):
        s = connect(a.port)
        s.sendall(msg)
        what = _("session {no}").format(no=i + 1)
        compare(what, msg, recv_exactly(s, len(msg), what))
        s.shutdown(socket.SHUT_WR)
        expect_eof(s, what)
        s.close()


def cmd_sigpipe(a):
    """Make the server write to a peer that is gone, the two ways that raise SIGPIPE.  A send()
    fails with EPIPE (and raises SIGPIPE, unless the server ignores it or sends with MSG_NOSIGNAL)
    on a socket that got our FIN and then our RST: the RST finds it in CLOSE_WAIT.  (An RST with
    no FIN before it gives the first send() ECONNRESET, without a signal, and only the next one
    EPIPE: a reset alone may never raise it, if the server stops at the first error.)

    1. Queued: while a "plug" connection keeps a one-at-a-time server busy, n clients each send
       60 KB and a FIN, then reset.  The server reads the 60 KB after the RST (the kernel keeps
       them), and its very first echo fails with EPIPE, however the machine schedules us.
    2. Live: n clients each send 60 KB and a FIN in one corked burst and close.  The server's
       first echo reaches a closed socket and brings back an RST; the next send fails."""
    def corked_burst(i):
        """A connection whose 60 KB leave in one corked burst (with the FIN, once it closes)."""
        s = connect(a.port)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            s.sendall(payload(60000, i))
        except OSError as e:
            raise CheckFailed(_("sigpipe client {no}: {error}").format(no=i, error=e.strerror or e))
        return s

    plug = connect(a.port)
    queued = []
    for i in range(a.n):
        queued.append(corked_burst(i))
        queued[-1].shutdown(socket.SHUT_WR)  # flushes the cork: data and FIN leave together
    time.sleep(0.2)  # the FINs are in: the server's sockets are in CLOSE_WAIT
    for s in queued:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # SO_LINGER 0: close() sends an RST
    plug.close()
    for i in range(a.n):
        corked_burst(a.n + i).close()
    time.sleep(0.3)
    cmd_short(a)


def cmd_slowreader(a):
    """A client sends 16 MiB and reads nothing; meanwhile another client must be answered
    within 1 s, again and again.  Prints the peak number of bytes the slow one got sent."""
    slow = connect(a.port)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    total = 16 * 1024 * 1024
    state = {"sent": 0}

    def push():
        chunk = b"s" * 65536
        slow.settimeout(a.seconds + 5)
        try:
            while state["sent"] < total:
                state["sent"] += slow.send(chunk)
        except OSError:
            pass

    threading.Thread(target=push, daemon=True).start()
    time.sleep(0.5)
    deadline = time.monotonic() + a.seconds
    worst, late_in_a_row = 0.0, 0
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        s = connect(a.port, timeout=2)
        s.sendall(b"ping\n")
        try:
            got = recv_exactly(s, 5, _("the other client"), timeout=1.0)
            late_in_a_row = 0
        except CheckFailed:
            # A stalled loop misses every probe; a busy machine may delay one.
            late_in_a_row += 1
            if late_in_a_row == 2:
                raise CheckFailed(_("while one client sent data and read none, other clients got no echo within 1 s, "
                                    "twice in a row: something the server waits on blocks the others (a blocking "
                                    "send() to that client, or a blocking wait for a child)"))
            s.close()
            continue
        compare(_("the other client"), b"ping\n", got)
        worst = max(worst, time.monotonic() - t0)
        s.close()
        time.sleep(0.2)
    print(_("slow reader pushed {sent} bytes; other clients' worst round trip {ms:.1f} ms").format(
        sent=state["sent"], ms=worst * 1000))
    abort(slow)


COMMANDS = {
    "probe": cmd_probe,
    "short": cmd_short,
    "binary": cmd_binary,
    "stream": cmd_stream,
    "pipeline": cmd_pipeline,
    "halfclose": cmd_halfclose,
    "halfclose-corked": cmd_halfclose_corked,
    "halfclose-many": cmd_halfclose_many,
    "parallel": cmd_parallel,
    "hold": cmd_hold,
    "served": cmd_served,
    "drained": cmd_drained,
    "concurrency": cmd_concurrency,
    "resets": cmd_resets,
    "churn": cmd_churn,
    "sessions": cmd_sessions,
    "sigpipe": cmd_sigpipe,
    "slowreader": cmd_slowreader,
}


def main():
    global HOST
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("port", type=int)
    p.add_argument("--host", default=HOST)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("short", "binary", "stream", "pipeline", "halfclose", "halfclose-corked"):
        sub.add_parser(name)
    q = sub.add_parser("probe")
    q.add_argument("--seconds", type=float, default=5)
    q = sub.add_parser("parallel")
    q.add_argument("n", type=int)
    q.add_argument("--rounds", type=int, default=3)
    q = sub.add_parser("hold")
    q.add_argument("n", type=int)
    q.add_argument("--ready", required=True)
    q.add_argument("--seconds", type=float, default=60)
    q.add_argument("--no-verify", dest="verify", action="store_false")
    q = sub.add_parser("served")
    q.add_argument("n", type=int)
    q.add_argument("--ready", required=True)
    q.add_argument("--wait", type=float, default=2)
    q.add_argument("--seconds", type=float, default=60)
    q = sub.add_parser("drained")
    q.add_argument("--ready", required=True)
    q.add_argument("--seconds", type=float, default=60)
    q = sub.add_parser("concurrency")
    q.add_argument("mode", choices=("serial", "parallel"))
    q.add_argument("--busy", type=int, default=1)
    for name, default in (("resets", 20), ("churn", 1000), ("sessions", 200), ("sigpipe", 20), ("halfclose-many", 40)):
        q = sub.add_parser(name)
        q.add_argument("n", type=int, nargs="?", default=default)
    q = sub.add_parser("slowreader")
    q.add_argument("--seconds", type=float, default=3)
    a = p.parse_args()
    HOST = a.host
    try:
        COMMANDS[a.cmd](a)
    except CheckFailed as e:
        print(e, file=sys.stderr)
        sys.exit(3 if isinstance(e, NoEcho) else 1)
    except (OSError, asyncio.TimeoutError) as e:
        # TRANSLATORS: {command} is the client's subcommand ("echo", "halfclose"), {error} Python's.
        print(_("{command}: unexpected network error: {error}").format(command=a.cmd, error=e), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
