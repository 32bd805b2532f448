// Node's side of `demo bench`: the same work with child_process.fork and
// child.send (json serialization). Prints one JSON line of results.
//   node bench.js throughput N PAYLOAD_LEN   -> {"secs": s}
//   node bench.js rtt N                      -> {"us": [..sorted..]}
'use strict';
const { fork } = require('child_process');

if (process.argv[2] === 'child') {
  let count = 0;
  const want = Number(process.argv[3]);
  process.on('message', (m) => {
    if (m === 'ping') { process.send('pong'); return; }
    count += 1;
    if (count === want) process.send({ done: count });
  });
  process.on('disconnect', () => process.exit(0));
  return;
}

const [mode, n, len] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 0)];
const child = fork(__filename, ['child', String(n)]);
if (mode === 'throughput') {
  const payload = 'x'.repeat(len);
  child.once('message', () => {
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(JSON.stringify({ secs }));
    child.disconnect();
  });
  const start = process.hrtime.bigint();
  for (let seq = 0; seq < n; seq++) child.send({ seq, payload });
} else {
  const us = [];
  let t = 0n;
  const ping = () => { t = process.hrtime.bigint(); child.send('ping'); };
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
