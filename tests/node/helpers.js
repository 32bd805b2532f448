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
