#!/usr/bin/env node
// `npm test`: installs the system servers the integration tests need (when
// missing), type-checks and lints every workspace, then runs every test on
// the primary Node.js release, and the smoke subset (the packaging tests,
// core, and a few fast tests of the grpc-tower channel and undici
// dispatcher) on each other supported release; on the oldest of those, the
// tests of the parts that load undici and @kubernetes/client-node once more,
// against the oldest releases of them that the packages accept.
//
// The releases are pinned official builds (scripts/node-releases.mjs),
// installed on first use. Each run puts the folder of its release's binary
// first in PATH, so the `node`, `npm` and `npx` that tests start run on that
// release too.
//
//   node scripts/test.mjs [vitest arguments]  all of it; the arguments go to the primary run
//   --no-matrix    only the primary run (no smoke runs on the other releases)
//   --matrix-only  only the smoke runs on the other releases (no checks, no full suite)
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PRIMARY, SECONDARY, SUPPORTED, ensureInstalled, lockedNode, pathFor } from './node-releases.mjs';

/** What runs on the secondary releases (vitest file filters). */
const SMOKE = [
  'packaging/',
  'packages/core/',
  'packages/tower/src/target.test.ts',
  'packages/tower/src/channel.test.ts',
  // undici's releases (an optional peer) require given Node.js releases; Node's own fetch differs in each
  'packages/tower/src/undici/dispatcher.test.ts',
  // Connect-ES 2.x (an optional peer) requires Node.js 22 or later; its HTTP/2 client and server are node:http2's
  'packages/tower/src/connect/transport.test.ts',
];
/**
 * Files of the smoke directories left to the primary run: their cases do not
 * depend on the Node.js release (a peer that never answers waits out the
 * transport's fixed 20 s connect timeout once per run, which is enough).
 */
const SMOKE_EXCLUDE = ['**/grpc/native/misbehaving.test.ts'];
/**
 * The tests of the parts that load an optional peer, run again on the oldest
 * supported release against the oldest release of each peer the packages accept
 * (vitest.oldest-peers.config.ts says which).
 */
const OLDEST_PEERS = [
  'packages/tower/src/undici/',
  'packages/discover/src/kubernetes/',
  'packages/discover/src/test/kube-api.test.ts',
  'packages/tower/src/kubernetes.test.ts',
];

const root = join(import.meta.dirname, '..');

function run(cmd, args, { env = {}, node } = {}) {
  const label = node === undefined ? '' : `[node ${node.version}] `;
  console.log(`\n${label}$ ${cmd} ${args.join(' ')}`);
  const started = performance.now();
  const r = spawnSync(cmd === 'node' && node !== undefined ? node.bin : cmd, args, {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, ...env, PATH: node === undefined ? process.env.PATH : pathFor(node) },
  });
  if (r.status !== 0) {
    console.error(`\n${label}${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
  return Math.round(performance.now() - started);
}

const args = process.argv.slice(2);
const noMatrix = args.includes('--no-matrix');
const matrixOnly = args.includes('--matrix-only');
const extra = args.filter((a) => a !== '--no-matrix' && a !== '--matrix-only');

const wanted = SUPPORTED.map((major) => [major, lockedNode(major)]);
const missing = wanted.filter(([, node]) => node === undefined).map(([major]) => major);
if (missing.length > 0) {
  // no official build of these releases in the registry for this platform (the lockfile lists Linux x64 and arm64)
  const current = Number(process.versions.node.split('.')[0]);
  if (!SUPPORTED.includes(current)) {
    console.error(
      `npm test: scripts/node-versions has no Node.js ${missing.join(', ')} for ${process.platform}-${process.arch}, ` +
        `and this Node.js (${process.version}) is not a supported release (${SUPPORTED.join(', ')}): ` +
        'run it with one of those',
    );
    process.exit(1);
  }
  console.warn(
    `npm test: scripts/node-versions has no Node.js ${missing.join(', ')} for ${process.platform}-${process.arch}; ` +
      `everything runs on this Node.js (${process.version}) alone`,
  );
} else {
  ensureInstalled(wanted.map(([, node]) => node));
}
const byMajor = new Map(wanted);
const primary = missing.length === 0 ? byMajor.get(PRIMARY) : undefined;
const secondary = missing.length === 0 ? SECONDARY.map((major) => byMajor.get(major)) : [];
const opts = { node: primary };
const vitest = join('node_modules', 'vitest', 'vitest.mjs');
const timings = [];

if (!matrixOnly) {
  run('node', ['scripts/lock-platforms.mjs', '--check'], opts);
  run('node', ['scripts/check-deps.mjs'], opts);
  run('node', ['scripts/check-packages.mjs'], opts);
  run('node', ['scripts/check-exports.mjs'], opts);
  run('node', ['scripts/check-file-sizes.mjs'], opts);
  run('node', ['scripts/check-public-names.mjs'], opts);
  run('node', ['scripts/check-architecture.mjs'], opts);
  run('node', ['scripts/setup-system.mjs'], opts);
  run('npx', ['turbo', 'run', 'typecheck', '--output-logs=errors-only'], {
    ...opts,
    env: { TURBO_TELEMETRY_DISABLED: '1' },
  });
  // bench/, reliability/ and packaging/ are not workspaces: type-check them here
  run('npx', ['tsc', '--noEmit', '-p', 'bench'], opts);
  run('npx', ['tsc', '--noEmit', '-p', 'reliability'], opts);
  run('npx', ['tsc', '--noEmit', '-p', 'packaging'], opts);
  run('npx', ['biome', 'check', '.'], opts);
  const ms = run('node', [vitest, 'run', ...extra], opts);
  timings.push(
    `all tests on Node.js ${primary?.version ?? process.versions.node}: ${(ms / 1000).toFixed(0)} s`,
  );
}
if (!noMatrix) {
  for (const node of secondary) {
    const ms = run(
      'node',
      [vitest, 'run', ...SMOKE, ...SMOKE_EXCLUDE.flatMap((glob) => ['--exclude', glob])],
      {
        node,
      },
    );
    timings.push(`smoke subset on Node.js ${node.version}: ${(ms / 1000).toFixed(0)} s`);
  }
  const oldest = secondary.find((node) => node.major === Math.min(...SECONDARY));
  if (oldest !== undefined) {
    const ms = run('node', [vitest, 'run', '--config', 'vitest.oldest-peers.config.ts', ...OLDEST_PEERS], {
      node: oldest,
    });
    timings.push(`oldest optional peers on Node.js ${oldest.version}: ${(ms / 1000).toFixed(0)} s`);
  }
}
console.log(`\n${timings.join('\n')}`);
