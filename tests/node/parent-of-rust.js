// Node parent, Rust child: messages both ways, a net.Server and a net.Socket
// sent to the child, and the parent's getConnections()/close(), which need
// the child's NODE_SOCKET_* answers. Prints PASS and exits 0 when all held.
'use strict';
const { spawn } = require('child_process');
const net = require('net');
const assert = require('assert');

const { readAll, guard: startGuard, messages } = require('./helpers');
const guard = startGuard(30000);
const child = spawn(process.argv[2], ['echo'], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });

const next = messages(child);

(async () => {
  const started = await next();
  assert.strictEqual(started.what, 'started');

  const nested = { text: 'héllo \u2028 "quoted" \\ 😀', list: [1, { b: 'ü', n: null, t: true }], n: -1.5 };
  child.send(nested);
  assert.deepStrictEqual(await next(), nested);
  child.send('plain string');
  assert.strictEqual(await next(), 'plain string');

  // A server: the child accepts on it and answers.
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  await new Promise((r) => child.send('server', server, r));
  server.close(); // only the child accepts from here on
  assert.strictEqual(await readAll(port), 'handled by child\n');
  assert.strictEqual((await next()).what, 'served');

    // A UDP socket: the child answers a datagram on it.
  const dgram = require('dgram');
  const udp = dgram.createSocket('udp4');
  await new Promise((r) => udp.bind(0, '127.0.0.1', r));
  const udpPort = udp.address().port;
  await new Promise((r) => child.send('udp', udp, r));
  udp.close(); // only the child's copy receives from here on
  const client4 = dgram.createSocket('udp4');
  const pong = new Promise((r) => client4.once('message', (m) => r(String(m))));
  client4.send('ping', udpPort, '127.0.0.1');
  assert.strictEqual(await pong, 'pong');
  client4.close();
  assert.strictEqual((await next()).detail, 'datagram ping');

  // A socket, kept by the child until told to let go.
  const srv2 = net.createServer({ pauseOnConnect: true });
  await new Promise((r) => srv2.listen(0, '127.0.0.1', r));
  const port2 = srv2.address().port;
  const gotSocket = new Promise((r) => srv2.once('connection', r));
  const client = net.connect(port2, '127.0.0.1');
    let answer = '';
  const answered = new Promise((r) => client.on('data', (d) => { answer += d; if (answer.endsWith('\n')) r(answer); }));
  const socket = await gotSocket;
  child.send('hold', socket);
  const served = await next();
  assert.strictEqual(served.detail, 'socket key=Some("4:127.0.0.1:0")');
    assert.strictEqual(await answered, 'socket answered by child\n');


  // getConnections: 0 here, 1 in the child.
  const count = await new Promise((r, j) => srv2.getConnections((e, n) => (e ? j(e) : r(n))));
    assert.strictEqual(count, 1);
  assert.match((await next()).detail, /NODE_SOCKET_GET_COUNT/);
  // close() waits for the child's NODE_SOCKET_ALL_CLOSED, due when it lets go.
  let closed = false;
  const closing = new Promise((r) => srv2.close(() => { closed = true; r(); }));
    const internal = await next(); // the child reports the NOTIFY_CLOSE it saw
  assert.match(internal.detail, /NODE_SOCKET_NOTIFY_CLOSE/);

  assert.strictEqual(closed, false);
  child.send('release');
  assert.strictEqual((await next()).what, 'released');
  await closing;
  client.destroy();

  child.disconnect();
  const code = await new Promise((r) => child.on('exit', r));
  assert.strictEqual(code, 0);
  clearTimeout(guard);
  console.log('PASS');
})().catch((e) => { console.error('FAIL:', e); process.exit(1); });
