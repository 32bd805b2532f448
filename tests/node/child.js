// Node child of a Rust parent: echoes messages; serves one connection on a
// received net.Server; answers a received net.Socket.
'use strict';
process.on('message', (m, handle) => {
  if (m === 'server') {
    handle.once('connection', (s) => { s.end('handled by node child\n'); handle.close(); });
    process.send({ served: 'server', listening: handle.listening });
    } else if (m === 'udp') {
    // A dgram.Socket: answer one datagram, then let the process end.
    handle.once('message', (data, rinfo) => {
      handle.send(`pong ${data}`, rinfo.port, rinfo.address, () => handle.close());
    });
    process.send({ served: 'udp', type: handle.type });
  } else if (m === 'socket') {
    handle.end('socket answered by node child\n');
    process.send({ served: 'socket', remote: handle.remoteAddress });
  } else {
    process.send(m);
  }
});
