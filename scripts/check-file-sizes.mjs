#!/usr/bin/env node
// Checks that no product source file is longer than LIMIT lines, so each
// file stays one job a reader can hold. Product sources are the `.ts` files
// under `packages/*/src`, without tests (`*.test.ts`) and without test
// helpers (anything in a folder named `test/`).
//
// A longer file passes only when ARCHITECTURE.md names it, with its reason,
// in the list under its "Files over 500 lines" heading, one line each:
//
//   - `packages/<pkg>/src/<file>.ts`: why it is one job
//
// A listed file that is gone, or that is no longer over the limit, fails the
// check too, so the list only holds what is true.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';

const LIMIT = 500;
const HEADING = '## Files over 500 lines';
const root = resolve(import.meta.dirname, '..');

/** The files ARCHITECTURE.md allows over the limit, each with its reason. */
function allowed() {
  const text = readFileSync(join(root, 'ARCHITECTURE.md'), 'utf8');
  const lines = text.split('\n');
  const start = lines.findIndex((line) => line.trim() === HEADING);
  if (start < 0) {
    console.error(`check-file-sizes: ARCHITECTURE.md has no "${HEADING}" section`);
    process.exit(1);
  }
  const list = new Map();
  const problems = [];
  for (let i = start + 1; i < lines.length && !lines[i].startsWith('## '); i++) {
    const line = lines[i];
    if (!line.startsWith('- `')) continue;
    const m = /^- `([^`]+)`: (\S.*)$/.exec(line);
    if (m === null) {
      problems.push(`ARCHITECTURE.md:${i + 1}: expected "- \`<path>\`: <reason>", got: ${line}`);
      continue;
    }
    list.set(m[1], m[2]);
  }
  return { list, problems };
}

/** Every product source file under packages/*\/src, as paths from the root. */
function sources() {
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name === 'test' || entry.name === 'node_modules') continue;
        walk(path);
      } else if (
        entry.name.endsWith('.ts') &&
        !entry.name.endsWith('.test.ts') &&
        !entry.name.endsWith('.d.ts')
      ) {
        found.push(relative(root, path).split(sep).join('/'));
      }
    }
  };
  for (const pkg of readdirSync(join(root, 'packages'))) {
    const src = join(root, 'packages', pkg, 'src');
    if (existsSync(src)) walk(src);
  }
  return found.sort();
}

/** Lines as an editor counts them: a final newline does not start another. */
function lineCount(path) {
  const text = readFileSync(join(root, path), 'utf8');
  if (text.length === 0) return 0;
  const n = text.split('\n').length;
  return text.endsWith('\n') ? n - 1 : n;
}

const { list, problems } = allowed();
const files = sources();
for (const file of files) {
  const n = lineCount(file);
  if (n <= LIMIT) continue;
  if (!list.has(file)) {
    problems.push(
      `${file}: ${n} lines, over ${LIMIT}: split it by job, or name it with its reason under "${HEADING}" in ARCHITECTURE.md`,
    );
  }
}
const present = new Set(files);
for (const file of list.keys()) {
  if (!present.has(file)) {
    problems.push(
      `ARCHITECTURE.md lists ${file} under "${HEADING}", but there is no such product source file`,
    );
  } else if (lineCount(file) <= LIMIT) {
    problems.push(
      `ARCHITECTURE.md lists ${file} under "${HEADING}", but it has ${lineCount(file)} lines now: remove it`,
    );
  }
}
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`check-file-sizes: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(
  `check-file-sizes: ${files.length} product source files, ${list.size} allowed over ${LIMIT} lines`,
);
