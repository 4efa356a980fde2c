#!/usr/bin/env node
// Checks the public entry points of every published package:
// 1. nothing they export is marked `@internal` in its TSDoc. Internal
//    helpers that the packages share live in `@grpc-tower/core/internal`,
//    which is not a public entry point. Entry points are the `exports` of
//    each package.json, except `./internal` and `./package.json`.
// 2. no `@internal` member (property, method, accessor, constructor,
//    static) of a class or interface they export is used outside the
//    package that declares it: by another package (its sources and tests),
//    an example, the bench, the reliability suite or the docs' snippets. A
//    member another package needs is part of a contract: make it public, or
//    move it to the package that uses it. ALLOWED below is empty; a line
//    whose use is gone fails the check too.
import { existsSync, readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import ts from 'typescript';
import { publicEntryPoints, root, typecheckOptions } from './lib/entry-points.mjs';

/**
 * `@internal` members used outside their package, as
 * `Owner.member in <the file that uses it>`. Empty: a use that appears is a
 * member to make public or to move (a layer's hooks on a call's context are
 * functions in `@grpc-tower/core/internal`, not members), never a line to
 * add here without saying why.
 */
const ALLOWED = new Set([]);
const entries = publicEntryPoints();
/** Every TypeScript source that may use a package: the packages (tests too), examples, bench, reliability, snippets. */
function sources() {
  const dirs = [
    ...readdirSync(join(root, 'packages')).map((d) => join('packages', d, 'src')),
    ...readdirSync(join(root, 'examples')).map((d) => join('examples', d, 'src')),
    'bench',
    join('reliability', 'src'),
    join('docs', 'snippets'),
  ];
  const files = [];
  for (const dir of dirs) {
    const abs = join(root, dir);
    if (!existsSync(abs)) continue;
    for (const f of readdirSync(abs, { recursive: true })) {
      const path = String(f);
      if (path.split(sep).includes('node_modules') || !/\.tsx?$/.test(path) || path.endsWith('.d.ts'))
        continue;
      files.push(join(abs, path));
    }
  }
  return files;
}

const program = ts.createProgram([...entries.map((e) => e.file), ...sources()], {
  ...typecheckOptions(),
  noEmit: true,
});
const checker = program.getTypeChecker();
const problems = [];
const isInternal = (d) => ts.getJSDocTags(d).some((t) => t.tagName.text === 'internal');
const internalMembers = new Map();
for (const entry of entries) {
  const sf = program.getSourceFile(entry.file);
  if (sf === undefined) {
    problems.push(`${entry.name}: ${entry.file} not found`);
    continue;
  }
  const moduleSymbol = checker.getSymbolAtLocation(sf);
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const internal = (symbol.declarations ?? []).some(isInternal);
    if (internal) problems.push(`${entry.name} exports ${exported.name}, which is marked @internal`);
    else collectInternalMembers(symbol);
  }
}

/** Who a file belongs to: `packages/core`, `examples/demo`, `bench`, … */
function ownerOf(file) {
  const parts = relative(root, file).split(sep);
  return parts[0] === 'packages' || parts[0] === 'examples' ? `${parts[0]}/${parts[1]}` : parts[0];
}

/** Declarations of the `@internal` members of exported classes and interfaces, as `Owner.member`. */
function collectInternalMembers(symbol) {
  if ((symbol.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface)) === 0) return;
  const add = (member, name) => {
    for (const d of member.declarations ?? []) {
      if (!internalMembers.has(d) && isInternal(d)) internalMembers.set(d, `${symbol.name}.${name}`);
    }
  };
  // instance members, inherited ones included
  for (const member of checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol)))
    add(member, member.name);
  const ctor = symbol.members?.get('__constructor');
  if (ctor !== undefined) add(ctor, 'constructor');
  // statics
  symbol.exports?.forEach((member) => {
    if (member.flags & (ts.SymbolFlags.Property | ts.SymbolFlags.Method | ts.SymbolFlags.Accessor))
      add(member, member.name);
  });
}

const used = new Map();
for (const sf of program.getSourceFiles()) {
  if (sf.isDeclarationFile || relative(root, sf.fileName).startsWith('..')) continue;
  if (sf.fileName.split(/[\\/]/).includes('node_modules')) continue;
  const user = ownerOf(sf.fileName);
  const file = relative(root, sf.fileName).split(sep).join('/');
  const report = (declarations, node) => {
    for (const d of declarations ?? []) {
      const label = internalMembers.get(d);
      if (label === undefined || ownerOf(d.getSourceFile().fileName) === user) continue;
      const key = `${label} in ${file}`;
      if (!used.has(key)) {
        const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
        used.set(
          key,
          `${file}:${line + 1} uses ${label}, @internal in ${ownerOf(d.getSourceFile().fileName)}`,
        );
      }
    }
  };
  const visit = (node) => {
    if (ts.isPropertyAccessExpression(node)) {
      report(checker.getSymbolAtLocation(node.name)?.declarations, node);
    } else if (ts.isBindingElement(node) && ts.isObjectBindingPattern(node.parent)) {
      const name = node.propertyName ?? node.name;
      if (ts.isIdentifier(name))
        report(checker.getTypeAtLocation(node.parent).getProperty(name.text)?.declarations, node);
    } else if (
      ts.isNewExpression(node) ||
      (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.SuperKeyword)
    ) {
      const declaration = checker.getResolvedSignature(node)?.declaration;
      if (declaration !== undefined) report([declaration], node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}
for (const [key, where] of used) if (!ALLOWED.has(key)) problems.push(where);
for (const key of ALLOWED) {
  if (!used.has(key)) problems.push(`ALLOWED names "${key}", which is no longer used: remove the line`);
}
if (problems.length > 0) {
  console.error(`internal members exported or used outside their package:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `check-exports: ${entries.length} public entry points, no internal member exported; ` +
    `${internalMembers.size} @internal members of exported classes, none used outside its package` +
    (ALLOWED.size > 0 ? ` but the ${ALLOWED.size} uses named in ALLOWED` : ''),
);
