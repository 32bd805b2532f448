// A Node parent and `demo worker` (a Rust child) exchange the messages that
// used to be lost: 64 KiB, 1 MiB and 32 MiB strings and 4,000-level
// nesting, one at a time and then all at once; each echo must be equal.
'use strict';
const { spawn } = require('child_process');
const assert = require('assert');
const { guard: startGuard } = require('./helpers');

const guard = startGuard(120000);
const child = spawn(process.argv[2], ['worker'], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });

function nested(depth) {
  let v = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

// assert.deepStrictEqual recurses once per level: compare the JSON text.
function same(a, b) {
  assert.ok(JSON.stringify(a) === JSON.stringify(b), 'echo differs');
}

const messages = [64 * 1024, 1024 * 1024, 32 * 1024 * 1024]
  .map((len) => ({ len, s: 'x'.repeat(len) }))
  .concat([nested(4000)]);

(async () => {
  for (const m of messages) {
    const echoed = new Promise((r) => child.once('message', r));
    child.send(m);
    same(await echoed, m);
  }
  // All at once: the worker's echoes go out while the rest still arrive.
  const got = [];
  const all = new Promise((r) => child.on('message', (m) => {
    got.push(m);
    if (got.length === messages.length) r();
  }));
  for (const m of messages) child.send(m);
  await all;
  got.forEach((m, i) => same(m, messages[i]));
  child.disconnect();
  assert.strictEqual(await new Promise((r) => child.on('exit', r)), 0);
  clearTimeout(guard);
  console.log('PASS');
})().catch((e) => { console.error('FAIL:', e); process.exit(1); });
