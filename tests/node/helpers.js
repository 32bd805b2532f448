// Shared by the Node test scripts.
'use strict';
const net = require('net');

// Connects to 127.0.0.1:port and resolves with everything the server sends
// before it closes.
exports.readAll = (port) => new Promise((resolve, reject) => {
  const c = net.connect(port, '127.0.0.1');
  let data = '';
  c.on('data', (d) => { data += d; });
  c.on('end', () => resolve(data));
  c.on('error', reject);
});

// Fails the script if it has not finished in `ms` milliseconds.
exports.guard = (ms) => setTimeout(() => { console.error('FAIL: timeout'); process.exit(2); }, ms);

// The messages of `child` in order: returns next(), a promise of the next
// one (queued if it came before it was asked for).
exports.messages = (child) => {
  const inbox = [];
  let waiting = null;
  child.on('message', (m) => { if (waiting) { const w = waiting; waiting = null; w(m); } else inbox.push(m); });
  return () => new Promise((resolve) => { if (inbox.length) resolve(inbox.shift()); else waiting = resolve; });
};
