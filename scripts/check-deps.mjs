#!/usr/bin/env node
// Checks that the dependencies of every package under packages/ are
// exactly what its code imports: each bare specifier that a non-test
// source imports (`import … from`, `export … from`, `import('…')`, and
// type-only imports, which the published .d.ts files import in turn) must
// name a package in `dependencies` or `peerDependencies`, and each package
// listed there must be imported by some non-test source. Packages whose
// types and instances are shared with the application (rxjs, grpc-js: a
// second copy makes an app's own `Subject` or `Metadata` a different type)
// must be peer dependencies, never `dependencies`, and every peer dependency
// is also a devDependency, so the workspace installs and tests it.
// `import { type A } from 'x'` keeps a bare `import 'x'` under
// verbatimModuleSyntax and counts as a run-time import. Test files
// (*.test.ts, *.test-d.ts) and test helpers (any `test/` folder) are not
// published: what they import belongs in devDependencies,
// and a non-test source that imports one of them is an error too. Node
// built-ins are ignored. Private packages (packages/testing: test support
// that runs inside the test runner, with no dist) are not published and are
// left out. A package the build bundles into the published code (`--bundle
// <package>` in `scripts.build`: an ES-module-only dependency, see
// scripts/build-package.mjs) is a devDependency, not a dependency: the
// application never installs it. Builds nothing; reads sources with the
// TypeScript parser.
// `--root DIR` checks the packages/ of another tree (the script's own tests).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const rootArg = process.argv.indexOf('--root');
const root = rootArg > 0 ? resolve(process.argv[rootArg + 1] ?? '.') : resolve(import.meta.dirname, '..');
const TEST_DIRS = new Set(['test']);
/** Packages whose types and instances the application shares: peer dependencies only. */
const SHARED = new Set(['rxjs', '@grpc/grpc-js']);

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

/** The module specifiers that `file` imports, each with whether only its types are. */
function importsOf(file) {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = [];
  const visit = (node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: node.importClause?.isTypeOnly === true });
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length > 0 &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push({ specifier: node.arguments[0].text, typeOnly: false });
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      found.push({ specifier: node.argument.literal.text, typeOnly: true });
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
/** The version of each package in this tree, by name. */
const versions = new Map();
for (const name of readdirSync(packagesDir)) {
  try {
    const m = JSON.parse(readFileSync(join(packagesDir, name, 'package.json'), 'utf8'));
    versions.set(m.name, m.version);
  } catch {}
}
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
  const build = (manifest.scripts?.build ?? '').split(/\s+/);
  const bundled = build.flatMap((arg, i) => (build[i - 1] === '--bundle' ? [arg] : []));
  for (const dep of bundled) {
    if (declared.has(dep)) {
      problems.push(
        `${where}: "${dep}" is bundled by the build (--bundle), so it must not be in ${declared.get(dep)}`,
      );
    } else if (manifest.devDependencies?.[dep] === undefined) {
      problems.push(
        `${where}: "${dep}" is bundled by the build (--bundle), but it is not in devDependencies`,
      );
    } else declared.set(dep, 'devDependencies (bundled)');
  }
  const used = new Map(); // package → first file that imports it at run time
  const typeUsed = new Map(); // package → first file that imports its types only
  const srcDir = join(dir, 'src');
  for (const path of sources(srcDir)) {
    if (isTestPath(path)) continue;
    const file = join(srcDir, path);
    for (const { specifier, typeOnly } of importsOf(file)) {
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
      const into = typeOnly ? typeUsed : used;
      if (!into.has(pkg)) into.set(pkg, `src/${path}`);
    }
  }
  for (const [pkg, file] of used) {
    if (!declared.has(pkg)) {
      problems.push(
        `${where}: ${file} imports "${pkg}" at run time, but it is not in dependencies or peerDependencies`,
      );
    }
  }
  for (const [pkg, file] of typeUsed) {
    if (!declared.has(pkg) && !used.has(pkg)) {
      problems.push(
        `${where}: ${file} imports types from "${pkg}", which the published .d.ts files import in turn, ` +
          'but it is not in dependencies or peerDependencies',
      );
    }
  }
  for (const [dep, field] of declared) {
    if (!used.has(dep) && !typeUsed.has(dep)) {
      problems.push(
        `${where}: "${dep}" is in ${field}, but no published source imports it ` +
          '(a package needed only by tests belongs in devDependencies)',
      );
    }
  }
  for (const pkg of SHARED) {
    if (manifest.dependencies?.[pkg] !== undefined) {
      problems.push(
        `${where}: "${pkg}" is in dependencies; it must be a peer dependency, so that the application's ` +
          'own copy is the one used (a nested copy makes its types and instances different ones)',
      );
    }
  }
  for (const [dep, field] of declared) {
    if (bundled.includes(dep)) continue;
    const range = manifest[field][dep];
    const own = versions.get(dep);
    if (own !== undefined && range !== `^${own}`) {
      problems.push(
        `${where}: "${dep}": "${range}" in ${field}; a package of this tree is required as "^${own}"`,
      );
    } else if (own === undefined && !/^[\^~>]/.test(range)) {
      problems.push(
        `${where}: "${dep}": "${range}" in ${field} is not a range (such as "^1.2.3"): ` +
          'an application with another release of it would get a nested copy or a conflict',
      );
    }
  }
  for (const dep of Object.keys(manifest.peerDependencies ?? {})) {
    if (manifest.devDependencies?.[dep] === undefined) {
      problems.push(
        `${where}: the peer dependency "${dep}" is not in devDependencies, so nothing here tests it`,
      );
    }
  }
}

if (problems.length > 0) {
  console.error(`check-deps: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join('\n')}`);
  process.exit(1);
}
console.log(
  `check-deps: ${checked} packages, dependencies and peer dependencies match their imports` +
    (skipped.length > 0 ? ` (private, not checked: ${skipped.join(', ')})` : ''),
);
