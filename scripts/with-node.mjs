#!/usr/bin/env node
// Runs a command on one of the Node.js releases the tests run on (see
// scripts/node-releases.mjs), installing it first when needed: the folder of
// its binary goes first in PATH, so that `node`, `npm` and `npx` in the
// command, and every process they start, run on it.
//   node scripts/with-node.mjs npx vitest run packages/tower     on the primary release (24)
//   node scripts/with-node.mjs --node 22 npx vitest run packages/core
//   npm run with-node -- npx vitest run packages/tower            the same through npm
import { spawnSync } from 'node:child_process';
import { PRIMARY, SUPPORTED, ensureInstalled, lockedNode, pathFor } from './node-releases.mjs';

const args = process.argv.slice(2);
let major = PRIMARY;
if (args[0] === '--node') {
  major = Number(args[1]);
  args.splice(0, 2);
}
if (!SUPPORTED.includes(major) || args.length === 0) {
  console.error(
    `usage: node scripts/with-node.mjs [--node ${SUPPORTED.join('|')}] command [args…] ` +
      `(the release defaults to ${PRIMARY})`,
  );
  process.exit(2);
}
const node = lockedNode(major);
if (node === undefined) {
  console.error(
    `with-node: scripts/node-versions pins no Node.js ${major} for ${process.platform}-${process.arch}; ` +
      'install it yourself and run the command directly',
  );
  process.exit(1);
}
ensureInstalled([node]);
const [cmd, ...rest] = args;
const r = spawnSync(cmd === 'node' ? node.bin : (cmd ?? ''), rest, {
  stdio: 'inherit',
  env: { ...process.env, PATH: pathFor(node) },
});
if (r.error !== undefined) {
  console.error(`with-node: ${cmd} could not be started: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
