#!/usr/bin/env node
// Checks the public entry points of every published package: nothing they
// export is marked `@internal` in its TSDoc. Internal helpers that the
// packages share live in `@grpc-tower/core/internal`, which is not a public
// entry point. Entry points are the `exports` of each package.json, except
// `./internal` and `./package.json`.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(import.meta.dirname, '..');
const entries = [];
for (const dir of readdirSync(join(root, 'packages'))) {
  const pkgFile = join(root, 'packages', dir, 'package.json');
  if (!existsSync(pkgFile)) continue;
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
  if (pkg.private) continue;
  for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
    if (subpath === './internal' || subpath === './package.json') continue;
    const source = typeof target === 'object' ? (target['@grpc-tower/source'] ?? target.source) : undefined;
    if (typeof source !== 'string') continue;
    entries.push({
      name: `${pkg.name}${subpath === '.' ? '' : subpath.slice(1)}`,
      file: join(root, 'packages', dir, source),
    });
  }
}

const config = ts.getParsedCommandLineOfConfigFile(
  join(root, 'tsconfig.typecheck.json'),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  },
);
const program = ts.createProgram(
  entries.map((e) => e.file),
  { ...config.options, noEmit: true },
);
const checker = program.getTypeChecker();
const problems = [];
for (const entry of entries) {
  const sf = program.getSourceFile(entry.file);
  if (sf === undefined) {
    problems.push(`${entry.name}: ${entry.file} not found`);
    continue;
  }
  const moduleSymbol = checker.getSymbolAtLocation(sf);
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const internal = (symbol.declarations ?? []).some((d) =>
      ts.getJSDocTags(d).some((t) => t.tagName.text === 'internal'),
    );
    if (internal) problems.push(`${entry.name} exports ${exported.name}, which is marked @internal`);
  }
}
if (problems.length > 0) {
  console.error(`public entry points export internal members:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`check-exports: ${entries.length} public entry points, no internal member exported`);
