// harness/bench/peers/echo.js — the Node.js peer of the benchmark: an echo server written the way
// Node's users write one (net.createServer, socket.pipe(socket), an error handler), so that
// `harness/bench --peers` compares the lab's servers with libuv's event loop as people use it.
// It keeps the lab's contract where the benchmark needs it: -p PORT (0: the kernel chooses),
// -b ADDR, the ready line "listening on ADDR:PORT" on stdout, exit 0 on SIGTERM or SIGINT.
'use strict';
const net = require('net');

let port = 8080;
let addr = '127.0.0.1';
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-p' && i + 1 < args.length) port = Number(args[++i]);
  else if (args[i] === '-b' && i + 1 < args.length) addr = args[++i];
  else if (args[i] === '-q') continue;  // the lab's servers' quiet flag: this one logs nothing anyway
  else {
    process.stderr.write(`echo.js: unknown argument '${args[i]}' (usage: node echo.js [-p PORT] [-b ADDR] [-q])\n`);
    process.exit(2);
  }
}

const server = net.createServer((socket) => {
  socket.on('error', () => socket.destroy());  // a reset client ends its own connection, nothing else
  socket.pipe(socket);  // back-pressure included: pipe pauses reading while the socket's output is full
});
server.on('error', (err) => {
  process.stderr.write(`echo.js: ${err.message}\n`);
  process.exit(1);
});
server.listen({ port, host: addr, backlog: 4096 }, () => {  // the lab's servers ask for SOMAXCONN too
  process.stdout.write(`listening on ${addr}:${server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
