// Node parent, tokio child (tokio-child): every socket the child gets it
// converts to a tokio stream and holds. The parent's getConnections() must
// follow the child's count as it lets them go one by one, and close() must
// wait for the last one, also when a task of the child drops it on its own. Prints PASS and exits 0 when all held.
'use strict';
const { spawn } = require('child_process');
const net = require('net');
const assert = require('assert');

const { guard: startGuard, messages } = require('./helpers');
const guard = startGuard(30000);
const child = spawn(process.argv[2], ['echo'], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });

const next = messages(child);
const connections = (srv) => new Promise((r, j) => srv.getConnections((e, n) => (e ? j(e) : r(n))));

// getConnections(), then the child's report of the question it answered.
const expectConnections = async (srv, n) => {
  assert.strictEqual(await connections(srv), n);
  assert.match((await next()).detail, /NODE_SOCKET_GET_COUNT/);
};

(async () => {
  const started = await next();
  assert.strictEqual(started.what, 'started');
  assert.strictEqual(started.detail, 'env_left=false cloexec=true grandchild=NoChannel');

  const srv = net.createServer({ pauseOnConnect: true });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const port = srv.address().port;
  const N = 3;
  const clients = [];
  for (let i = 1; i <= N; i++) {
    const accepted = new Promise((r) => srv.once('connection', r));
    const client = net.connect(port, '127.0.0.1');
    clients.push(client);
    let answer = '';
    const answered = new Promise((r) => client.on('data', (d) => { answer += d; if (answer.endsWith('\n')) r(answer); }));
    child.send('hold', await accepted);
    assert.strictEqual((await next()).detail, 'socket key=Some("4:127.0.0.1:0")');
    assert.strictEqual(await answered, 'socket answered by child\n');
    await expectConnections(srv, i);
  }
  for (let left = N - 1; left >= 1; left--) {
    child.send('release-one');
    const released = await next();
    assert.strictEqual(released.what, 'released-one');
    assert.strictEqual(released.detail, String(left));
    await expectConnections(srv, left);
  }

  // close() waits for the child's NODE_SOCKET_ALL_CLOSED, due when it lets go.
  let closed = false;
  const closing = new Promise((r) => srv.close(() => { closed = true; r(); }));
  assert.match((await next()).detail, /NODE_SOCKET_NOTIFY_CLOSE/);
  assert.strictEqual(closed, false);
  child.send('release');
  assert.strictEqual((await next()).what, 'released');
  await closing;
  clients.forEach((c) => c.destroy());

  // A socket the child keeps in a task until the client closes: close()
  // must complete when the client does, with nothing else on the channel.
  // On another key: Node keeps one socket list per channel and key, and
  // after a close() on the first server's key a new server with that key
  // reads 0 from getConnections(), with a Node child as well.
  const srv2 = net.createServer({ pauseOnConnect: true });
  await new Promise((r) => srv2.listen(0, '127.0.0.2', r));
  const accepted = new Promise((r) => srv2.once('connection', r));
  const client = net.connect(srv2.address().port, '127.0.0.2');
  let answer = '';
  const answered = new Promise((r) => client.on('data', (d) => { answer += d; if (answer.endsWith('\n')) r(answer); }));
  child.send('hold-until-eof', await accepted);
  assert.strictEqual((await next()).what, 'served');
  assert.strictEqual(await answered, 'socket answered by child\n');
  await expectConnections(srv2, 1);
  const closing2 = new Promise((r) => srv2.close(r));
  assert.match((await next()).detail, /NODE_SOCKET_NOTIFY_CLOSE/);
  client.end();
  await closing2;

  child.disconnect();
  assert.strictEqual(await new Promise((r) => child.on('exit', r)), 0);
  clearTimeout(guard);
  console.log('PASS');
})().catch((e) => { console.error('FAIL:', e); process.exit(1); });
