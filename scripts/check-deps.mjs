#!/usr/bin/env node
// Checks that the run-time dependencies of every package under packages/
// are exactly what its code imports when it runs: each bare specifier that
// a non-test source imports (`import … from`, `export … from`, `import('…')`)
// must name a package in `dependencies` or `peerDependencies`, and each
// package listed there must be imported by some non-test source. Type-only
// imports (`import type`, `export type`) are erased from the build and do
// not count; `import { type A } from 'x'` keeps a bare `import 'x'` under
// verbatimModuleSyntax and does count. Test files (*.test.ts, *.test-d.ts)
// and test helpers (any `test/` or `test-support/` folder) are not run-time
// code: what they import belongs in devDependencies, and a non-test source
// that imports one of them is an error too. Node built-ins are ignored.
// Private packages (packages/testing: test support that runs inside the
// test runner, with no dist) are not published and are left out.
// Builds nothing; reads sources with the TypeScript parser.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const root = resolve(import.meta.dirname, '..');
const TEST_DIRS = new Set(['test', 'test-support']);

/** Whether `path` (relative to a package's src/) is test code. */
function isTestPath(path) {
  const parts = path.split(sep);
  const file = parts.at(-1) ?? '';
  return (
    file.endsWith('.test.ts') ||
    file.endsWith('.test-d.ts') ||
    parts.slice(0, -1).some((p) => TEST_DIRS.has(p))
  );
}

/** The .ts files below `dir`, as paths relative to `base`. */
function sources(dir, base = dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path, base));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(relative(base, path));
  }
  return out;
}

/** The module specifiers that `file` loads when it runs. */
function runtimeSpecifiers(file) {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = [];
  const visit = (node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      if (node.importClause?.isTypeOnly !== true) found.push(node.moduleSpecifier.text);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      if (!node.isTypeOnly) found.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length > 0 &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
function packageOf(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

const problems = [];
const packagesDir = join(root, 'packages');
let checked = 0;
const skipped = [];
for (const name of readdirSync(packagesDir).sort()) {
  const dir = join(packagesDir, name);
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  } catch {
    continue;
  }
  if (manifest.private === true) {
    skipped.push(name);
    continue;
  }
  checked++;
  const where = `packages/${name}`;
  const declared = new Map();
  for (const field of ['dependencies', 'peerDependencies']) {
    for (const dep of Object.keys(manifest[field] ?? {})) declared.set(dep, field);
  }
  const used = new Map(); // package → first file that imports it
  const srcDir = join(dir, 'src');
  for (const path of sources(srcDir)) {
    if (isTestPath(path)) continue;
    const file = join(srcDir, path);
    for (const specifier of runtimeSpecifiers(file)) {
      if (specifier.startsWith('.') || specifier.startsWith('/')) {
        const target = relative(srcDir, resolve(dirname(file), specifier));
        if (!target.startsWith('..') && isTestPath(target)) {
          problems.push(`${where}: src/${path} imports the test helper ${specifier}; run-time code must not`);
        }
        continue;
      }
      if (isBuiltin(specifier)) continue;
      const pkg = packageOf(specifier);
      if (pkg === manifest.name) continue;
      if (!used.has(pkg)) used.set(pkg, `src/${path}`);
    }
  }
  for (const [pkg, file] of used) {
    if (!declared.has(pkg)) {
      problems.push(
        `${where}: ${file} imports "${pkg}" at run time, but it is not in dependencies or peerDependencies`,
      );
    }
  }
  for (const [dep, field] of declared) {
    if (!used.has(dep)) {
      problems.push(
        `${where}: "${dep}" is in ${field}, but no run-time source imports it ` +
          '(a package needed only by tests or for types belongs in devDependencies)',
      );
    }
  }
}

if (problems.length > 0) {
  console.error(`check-deps: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join('\n')}`);
  process.exit(1);
}
console.log(
  `check-deps: ${checked} packages, run-time dependencies match their imports` +
    (skipped.length > 0 ? ` (private, not checked: ${skipped.join(', ')})` : ''),
);
