// Node's side of `demo bench`: the same work with child_process.fork and
// child.send (json serialization). Prints one JSON line of results.
//   node bench.js throughput N PAYLOAD_LEN   -> {"secs": s}: from the
//     child's 'ready' to its count of N, sending with back-pressure
//   node bench.js rtt N                      -> {"us": [..sorted..]}: the
//     small message, echoed back by the child
'use strict';
const { fork } = require('child_process');

if (process.argv[2] === 'handoff-child') {
  // Answers each socket with one byte, and each server with a message.
  process.on('message', (m, handle) => {
    if (m === 'socket') handle.end('!');
    else if (m === 'server') { handle.close(); process.send('rebuilt'); }
  });
  process.on('disconnect', () => process.exit(0));
  return;
}

if (process.argv[2] === 'child') {
  let count = 0;
  const want = Number(process.argv[3]);
  process.on('message', (m) => {
    if (want === 0) { process.send(m); return; } // rtt: echo
    count += 1;
    if (count === want) process.send({ done: count });
  });
  process.on('disconnect', () => process.exit(0));
  // The throughput parent starts its clock on this, not at fork().
  if (want > 0) process.send('ready');
  return;
}

const [mode, n, len] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 0)];
if (mode === 'socket-handoff' || mode === 'server-handoff') {
  handoff(mode, n, len);
  return;
}
// The rtt child echoes (count 0); the throughput child counts n messages.
const child = fork(__filename, ['child', String(mode === 'rtt' ? 0 : n)]);
if (mode === 'throughput') {
  child.once('message', () => { // 'ready'
    const start = process.hrtime.bigint();
    child.once('message', () => { // { done: n }
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      console.log(JSON.stringify({ secs }));
      child.disconnect();
    });
    sendAll(child, n, 'x'.repeat(len));
  });
} else {
  const us = [];
  let t = 0n;
  const payload = 'x'.repeat(16);
  let seq = 0;
  const ping = () => { t = process.hrtime.bigint(); child.send({ seq: seq++, payload }); };
  child.on('message', () => {
    us.push(Number(process.hrtime.bigint() - t) / 1e3);
    if (us.length === n) {
      us.sort((a, b) => a - b);
      console.log(JSON.stringify({ us }));
      child.disconnect();
    } else {
      ping();
    }
  });
  ping();
}

// Sends {seq, payload} for seq 0..n with back-pressure, as Node's docs
// advise: child.send() returns false once the channel's write queue is over
// its high-water mark; then nothing more is sent until the callback of the
// last message sent has run (IPC has no 'drain' event). The callbacks run
// in order, so the last one has run when all have.
function sendAll(child, n, payload) {
  let seq = 0;
  let sent = 0;
  let waiting = false;
  const pump = () => {
    while (seq < n) {
      if (!child.send({ seq: seq++, payload }, onSent)) {
        waiting = true;
        return;
      }
    }
  };
  function onSent(err) {
    if (err) throw err;
    sent += 1;
    if (waiting && sent === seq) {
      waiting = false;
      pump();
    }
  }
  pump();
}

// socket-handoff N IN_FLIGHT -> {"secs": s}: N connections, IN_FLIGHT at a
// time; the parent accepts each and sends it to the child, which writes one
// byte and closes. server-handoff N -> {"us": [..sorted..]}: a fresh
// listening server each time, sent to the child, which rebuilds it and
// replies.
function handoff(mode, n, inFlight) {
  const net = require('net');
  const child = fork(__filename, ['handoff-child']);
  if (mode === 'server-handoff') {
    const us = [];
    const once = () => {
      const srv = net.createServer();
      srv.listen(0, '127.0.0.1', () => {
        const t = process.hrtime.bigint();
        child.once('message', () => {
          us.push(Number(process.hrtime.bigint() - t) / 1e3);
          srv.close();
          if (us.length === n) {
            us.sort((a, b) => a - b);
            console.log(JSON.stringify({ us }));
            child.disconnect();
          } else once();
        });
        child.send('server', srv);
      });
    };
    once();
    return;
  }
  // socket-handoff N IN_FLIGHT WORKERS: sockets dealt round-robin.
  const workers = [child];
  for (let i = 1; i < Number(process.argv[5] || 1); i++) workers.push(fork(__filename, ['handoff-child']));
  let next = 0;
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    workers[next].send('socket', socket);
    next = (next + 1) % workers.length;
  });
  server.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    let started = 0;
    let done = 0;
    const t = process.hrtime.bigint();
    const connect = () => {
      if (started === n) return;
      started += 1;
      const c = net.connect(port, '127.0.0.1');
      c.on('data', () => {});
      c.on('close', () => {
        done += 1;
        if (done === n) {
          console.log(JSON.stringify({ secs: Number(process.hrtime.bigint() - t) / 1e9 }));
          server.close();
          workers.forEach((w) => w.disconnect());
        } else connect();
      });
    };
    for (let i = 0; i < inFlight; i++) connect();
  });
}
