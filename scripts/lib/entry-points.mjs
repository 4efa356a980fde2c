// The public entry points of the published packages, and the compiler
// options the checks read them with; shared by check-exports.mjs and
// check-public-names.mjs.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';

export const root = resolve(import.meta.dirname, '..', '..');

/**
 * The `exports` of each published package.json, except `./internal` and
 * `./package.json`, as `{ name, file }` (`@grpc-tower/core/grpc` and its
 * source file).
 */
export function publicEntryPoints() {
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
  return entries;
}

/** The compiler options of tsconfig.typecheck.json. */
export function typecheckOptions() {
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
  return config.options;
}
