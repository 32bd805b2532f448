// Node's own cluster primary, for the tests and `demo bench cluster_rr`:
//   node cluster-primary.js N rr|none node|rust|mixed
// forks N workers: the docs' app (cluster-app.js) or Rust workers
// ($DEMO cluster-worker, started by setting process.execPath, as Node's
// cluster always runs process.execPath), alternating for "mixed".
// Prints one line per worker event; SIGTERM disconnects them and exits.
const cluster = require('node:cluster');
const path = require('node:path');
const process = require('node:process');

const [n, policy, kind] = process.argv.slice(2);
cluster.schedulingPolicy = policy === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
const nodePath = process.execPath;
const app = path.join(__dirname, 'cluster-app.js');

for (let i = 0; i < +n; i++) {
  const rust = kind === 'rust' || (kind === 'mixed' && i % 2 === 1);
  process.execPath = rust ? process.env.DEMO : nodePath;
  cluster.setupPrimary({ exec: rust ? 'cluster-worker' : app, args: [] });
  cluster.fork();
}
process.execPath = nodePath;

cluster.on('listening', (w, addr) => {
  console.log(`worker ${w.id} (pid ${w.process.pid}) listening on port ${addr.port}`);
});
cluster.on('exit', (w, code, signal) => {
  console.log(`worker ${w.id} (pid ${w.process.pid}) exited: code ${code} signal ${signal} (exitedAfterDisconnect=${w.exitedAfterDisconnect})`);
});
process.on('SIGTERM', () => {
  cluster.disconnect(() => process.exit(0));
});
