// The Node parent of tokio_worker_under_node.rs: forks the Rust worker
// (the path given as the first argument) with an 'ipc' channel, serves
// HTTP on 127.0.0.1 and hands every connection to it. Checks the answers,
// that getConnections() counts the keep-alive connections the worker
// holds, and that close() completes once the clients have gone. Prints
// OK and exits 0 when all held.
'use strict';
const { spawn } = require('child_process');
const http = require('http');
const net = require('net');
const assert = require('assert');

const guard = setTimeout(() => { console.error('FAIL: timeout'); process.exit(2); }, 30000);
const worker = spawn(process.argv[2], [], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
const message = () => new Promise((r) => worker.once('message', r));
const connections = (srv) => new Promise((r, j) => srv.getConnections((e, n) => (e ? j(e) : r(n))));

(async () => {
  assert.strictEqual(await message(), 'ready');
  worker.send('pid?');
  assert.strictEqual(await message(), worker.pid);

  // Every connection goes to the worker, untouched (pauseOnConnect).
  const server = net.createServer({ pauseOnConnect: true }, (socket) => worker.send('socket', socket));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();

  // Three keep-alive connections, two requests on each.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 3 });
  const get = () => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, agent }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  const first = await Promise.all([get(), get(), get()]);
  first.forEach((b) => assert.match(b, /^hello from a tokio worker \(request 1 on this connection\)\n$/));
  const second = await Promise.all([get(), get(), get()]);
  second.forEach((b) => assert.match(b, /^hello from a tokio worker \(request [2-4] on this connection\)\n$/));

  // The worker holds all three: Node counts them through it.
  assert.strictEqual(await connections(server), 3);

  // close() waits until the worker has dropped them, which it does when
  // the clients close.
  const closed = new Promise((r) => server.close(r));
  agent.destroy();
  await closed;

  worker.disconnect();
  assert.strictEqual(await new Promise((r) => worker.on('exit', r)), 0);
  clearTimeout(guard);
  console.log('OK: 6 requests on 3 connections answered by the tokio worker; getConnections() 3; close() completed');
})().catch((e) => { console.error('FAIL:', e); process.exit(1); });
