#!/usr/bin/env node
// Counts the public names of every published entry point (the `exports` of
// each package.json, except `./internal` and `./package.json`) and fails
// when:
// 1. the names of all entry points together are more than CEILING: each
//    name is a promise to users, and a surface that only grows is one
//    nobody can learn. The goal is GOAL names or fewer; until the surface
//    is there, CEILING is today's count, lowered by each change that
//    removes names, and never raised without saying why in the commit;
// 2. a name is exported by more than one entry point: each name has one
//    home, so an import never has two right answers;
// 3. an entry point is not named in AUDIENCE, which says whom it is for:
//    `users` (what an application calls to build and configure a client)
//    or `authors` (what somebody writing a layer, a discovery source, a
//    load metric or an endpoint needs).
//
//   node scripts/check-public-names.mjs           the check, with a table of the counts
//   node scripts/check-public-names.mjs --names   the table with every name
import ts from 'typescript';
import { publicEntryPoints, typecheckOptions } from './lib/entry-points.mjs';

/** The most public names the packages should have, all entry points together. */
const GOAL = 250;
/** Today's count: no change may add to it (lower it as names go). */
const CEILING = 315;

/** Whom each public entry point is for. */
const AUDIENCE = {
  'grpc-tower': 'users',
  'grpc-tower/undici': 'users',
  'grpc-tower/connect': 'users',
  '@grpc-tower/discover': 'users',
  '@grpc-tower/discover/etcd': 'users',
  '@grpc-tower/discover/kubernetes': 'users',
  '@grpc-tower/discover/xds': 'users',
  '@grpc-tower/retry': 'users',
  '@grpc-tower/health': 'users',
  '@grpc-tower/telemetry': 'users',
  '@grpc-tower/balance': 'users',
  '@grpc-tower/core': 'authors',
  '@grpc-tower/core/grpc': 'authors',
  '@grpc-tower/core/http2': 'authors',
};

const entries = publicEntryPoints();
const program = ts.createProgram(
  entries.map((e) => e.file),
  { ...typecheckOptions(), noEmit: true },
);
const checker = program.getTypeChecker();

const problems = [];
const homes = new Map();
const rows = [];
let total = 0;
for (const entry of entries) {
  const sf = program.getSourceFile(entry.file);
  if (sf === undefined) {
    problems.push(`${entry.name}: ${entry.file} not found`);
    continue;
  }
  const audience = AUDIENCE[entry.name];
  if (audience === undefined) problems.push(`${entry.name} is not in AUDIENCE: say whom it is for`);
  const names = checker.getExportsOfModule(checker.getSymbolAtLocation(sf)).map((s) => s.name);
  for (const name of names) homes.set(name, [...(homes.get(name) ?? []), entry.name]);
  total += names.length;
  rows.push({ entry: entry.name, audience: audience ?? '?', names });
}
for (const name of Object.keys(AUDIENCE)) {
  if (!entries.some((e) => e.name === name)) problems.push(`AUDIENCE names ${name}, which is no entry point`);
}
for (const [name, where] of homes) {
  if (where.length > 1) problems.push(`${name} is exported by ${where.join(', ')}: give it one home`);
}
if (total > CEILING) problems.push(`${total} public names in all, more than the ceiling of ${CEILING}`);

const withNames = process.argv.includes('--names');
for (const audience of ['users', 'authors']) {
  const mine = rows.filter((r) => r.audience === audience);
  console.log(`for ${audience}: ${mine.reduce((n, r) => n + r.names.length, 0)} names`);
  for (const r of mine) {
    console.log(`  ${r.entry.padEnd(34)} ${String(r.names.length).padStart(3)}`);
    if (withNames) console.log(`    ${r.names.join(' ')}`);
  }
}
if (problems.length > 0) {
  console.error(`public names:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `check-public-names: ${total} public names in ${entries.length} entry points, each from one ` +
    `(ceiling ${CEILING}; the goal is ${GOAL}, ${Math.max(0, total - GOAL)} to go)`,
);
