#!/usr/bin/env node
// Checks the claims of ARCHITECTURE.md that a script can check, in the
// product sources (packages/*/src, tests and test/ helpers aside):
// 1. Events are built only for subscribers: no RxJS subject is made for a
//    type named `…Event` (components publish through core's `EventStream`,
//    whose `emit` and `next` build and send nothing while nobody listens).
// 2. One address module: `host:port` and `[v6]:port` are parsed in
//    packages/core/src/address.ts only (`parseAddress`, `tryParseAddress`,
//    `splitHostPort`): no other file looks for the port after the last
//    colon or matches a bracketed IPv6 host with a regular expression.
// 3. No `@internal` member is exported or used across packages and each
//    public name has one entry point: scripts/check-exports.mjs and
//    scripts/check-public-names.mjs check those; files over 500 lines,
//    scripts/check-file-sizes.mjs.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { root } from './lib/entry-points.mjs';

const ADDRESS_MODULE = 'packages/core/src/address.ts';

/** The product sources: packages/<p>/src/**.ts, without tests and test helpers. */
function productSources() {
  const files = [];
  for (const pkg of readdirSync(join(root, 'packages'))) {
    const src = join(root, 'packages', pkg, 'src');
    let entries;
    try {
      entries = readdirSync(src, { recursive: true });
    } catch {
      continue;
    }
    for (const f of entries) {
      const path = String(f);
      const parts = path.split(sep);
      if (!path.endsWith('.ts') || path.endsWith('.d.ts') || path.endsWith('.test.ts')) continue;
      if (parts.includes('test') || parts.includes('gen') || parts.includes('node_modules')) continue;
      files.push(join(src, path));
    }
  }
  return files;
}

/** The code of a file with its comments blanked (examples in TSDoc may show anything). */
function code(text) {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '))
    .replace(/(^|[^:])\/\/.*$/gm, '$1');
}

const rules = [
  {
    claim: 'events are built only for subscribers (publish through EventStream)',
    pattern: /new\s+(?:Replay|Behavior)?Subject<\s*[A-Za-z]*Event\s*>/,
    except: ['packages/core/src/internal/events.ts'],
  },
  {
    claim: `host:port is parsed in ${ADDRESS_MODULE} only`,
    pattern: /lastIndexOf\(\s*['"]:['"]\s*\)|\\\[[^\n/]*\\\]:/,
    except: [ADDRESS_MODULE],
  },
];

const problems = [];
const files = productSources();
for (const file of files) {
  const rel = relative(root, file).split(sep).join('/');
  const lines = code(readFileSync(file, 'utf8')).split('\n');
  for (const rule of rules) {
    if (rule.except.includes(rel)) continue;
    lines.forEach((line, i) => {
      if (rule.pattern.test(line))
        problems.push(`${rel}:${i + 1}: ${line.trim()}\n    breaks "${rule.claim}"`);
    });
  }
}
if (problems.length > 0) {
  console.error(`ARCHITECTURE.md's claims:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `check-architecture: ${files.length} product source files; ${rules.map((r) => r.claim).join('; ')}`,
);
