#!/usr/bin/env python3
"""harness/bench/peers/echo_asyncio.py — the Python peer of the benchmark: an echo server on
asyncio's Protocol API (the fast one: no streams, no coroutine per message), as its users write it.

It keeps the lab's contract where the benchmark needs it: -p PORT (0: the kernel chooses), -b ADDR,
the ready line "listening on ADDR:PORT" on stdout, exit 0 on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import signal
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False  # the client half-closed: close once what is buffered is sent


async def serve(addr, port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    server = await loop.create_server(Echo, addr, port, backlog=4096)
    print(f"listening on {addr}:{server.sockets[0].getsockname()[1]}", flush=True)
    await stop
    server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", type=int, default=8080, dest="port")
    parser.add_argument("-b", default="127.0.0.1", dest="addr")
    parser.add_argument("-q", action="store_true", help="accepted for the lab's command line; logs nothing anyway")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.addr, args.port))
    except OSError as e:
        sys.exit(f"echo_asyncio.py: {e}")


if __name__ == "__main__":
    main()
