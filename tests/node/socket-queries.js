// Node parent, Rust child: server.close() and getConnections() need the
// child's NODE_SOCKET_* answers, also when its socket is dropped in another
// thread while it waits in a blocking receive, and when it only sends.
// Prints PASS and exits 0 when both held.
'use strict';
const { spawn } = require('child_process');
const net = require('net');
const assert = require('assert');

const { guard: startGuard, messages } = require('./helpers');
const guard = startGuard(30000);

function start(role) {
  const child = spawn(process.argv[2], [role], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
  return [child, messages(child)];
}

// A server whose one connection goes to `child`, and that connection's
// client end.
async function handOff(child) {
  const server = net.createServer({ pauseOnConnect: true }, (s) => child.send('socket', s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect(server.address().port, '127.0.0.1');
  await new Promise((r) => client.on('connect', r));
  return [server, client];
}

(async () => {
  {
    const [child, next] = start('socket-in-thread');
    const [server, client] = await handOff(child);
    assert.strictEqual(await next(), 'got');
    const closed = new Promise((r) => server.close(r));
    // The child has the close request, its socket is still open, and its
    // main thread waits in recv: the thread's drop must answer.
    assert.strictEqual(await next(), 'saw-notify');
    client.write('close-now\n');
    await closed;
    child.disconnect();
  }
  {
    const [child, next] = start('send-only');
    const [server, client] = await handOff(child);
    await next(); // it sends: it holds the socket
    const count = await new Promise((resolve, reject) =>
      server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
    assert.strictEqual(count, 1);
    client.destroy();
    child.disconnect();
    server.close();
  }
  clearTimeout(guard);
  console.log('PASS');
})().catch((e) => { console.error('FAIL:', e); process.exit(1); });
