// The child.js of Node's child.send(message, sendHandle) documentation,
// both examples in one file: run it with `demo share-server --child-cmd
// 'node demo/node/child.js'` or `demo route-sockets --child-cmd ...` (the
// role, normal or special, is appended as the last argument).
'use strict';
process.on('message', (m, handle) => {
  if (m === 'server') {
    handle.on('connection', (socket) => {
      socket.end('handled by child\n');
    });
  } else if (m === 'socket') {
    if (handle) {
      handle.end(`You were handled as a ${process.argv[2]} person\n`);
    }
  } else {
    process.send(m);
  }
});
