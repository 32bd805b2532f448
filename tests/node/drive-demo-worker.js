// A Node parent driving `demo worker special` over an 'ipc' stdio: echo,
// a socket answered with the role line, a server answered by the child.
'use strict';
const { spawn } = require('child_process');
const net = require('net');
const assert = require('assert');

const { readAll: reply, guard: startGuard } = require('./helpers');
const guard = startGuard(30000);
const child = spawn(process.argv[2], ['worker', 'special'], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });

(async () => {
  const msg = { hello: 'wörld \u2028', n: [1, 2, { deep: true }] };
  const echoed = new Promise((r) => child.once('message', r));
  child.send(msg);
  assert.deepStrictEqual(await echoed, msg);

  const srv = net.createServer({ pauseOnConnect: true });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  srv.once('connection', (socket) => child.send('socket', socket));
  assert.strictEqual(await reply(srv.address().port), 'You were handled as a special person\n');
  srv.close();

  const shared = net.createServer();
  await new Promise((r) => shared.listen(0, '127.0.0.1', r));
  const port = shared.address().port;
  await new Promise((r) => child.send('server', shared, r));
  shared.close(); // from here on only the child accepts
  // The child has the server once it answers this.
  const ready = new Promise((r) => child.once('message', r));
  child.send('ready?');
  assert.strictEqual(await ready, 'ready?');
  assert.strictEqual(await reply(port), 'handled by child\n');

  child.disconnect();
  assert.strictEqual(await new Promise((r) => child.on('exit', r)), 0);
  clearTimeout(guard);
  console.log('PASS');
})().catch((e) => { console.error('FAIL:', e); process.exit(1); });
