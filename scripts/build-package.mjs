#!/usr/bin/env node
// Builds the package in the current folder into a new dist/: its
// declarations by `tsc -p tsconfig.build.json` (emitDeclarationOnly), then
// its code. One implementation, loadable from
// both module systems, with one copy of each class:
//   dist/cjs/**.js   the implementation: every source file compiled to
//                    CommonJS by esbuild, file by file (relative imports
//                    stay relative, so each module exists once); what an
//                    application require()s, Jest's CommonJS runtime too;
//   dist/**/index.js for each `exports` subpath, an ES module that
//                    re-exports the names of its CommonJS twin, so that
//                    `import` and `require` give the same objects;
//   dist/**.d.ts     declarations for `import`, and their copies under
//                    dist/cjs/, where the nested package.json makes them
//                    CommonJS declarations for `require`.
// `--bundle <package>` (repeatable) names an ES-module-only dependency: it
// is bundled, with what it imports, into dist/cjs/vendor/<package>.js with
// its licence, and the implementation requires that file instead, because
// Jest's CommonJS runtime cannot require() an ES module on any Node version.
// The build fails when an ES wrapper does not give exactly the names and the
// objects of its CommonJS module.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const pkgDir = process.cwd();
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const dist = join(pkgDir, 'dist');
const cjsDir = join(dist, 'cjs');
const bundled = process.argv.flatMap((arg, i, all) => (all[i - 1] === '--bundle' ? [arg] : []));

/** Every file under `dir`, as paths relative to it. */
function walk(dir, base = dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path, base) : [relative(base, path)];
  });
}
const posix = (path) => path.split(sep).join('/');
/** A relative module specifier from the file `from` to the file `to`. */
const specifier = (from, to) => {
  const rel = posix(relative(dirname(from), to));
  return rel.startsWith('.') ? rel : `./${rel}`;
};

// 0. the declarations, in a dist/ of their own
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: pkgDir, stdio: 'inherit' });

// 1. the implementation, CommonJS, file by file
const isShipped = (file) =>
  file.endsWith('.ts') &&
  !file.endsWith('.d.ts') &&
  !/\.test(-d)?\.ts$/.test(file) &&
  !/(^|\/)test\//.test(posix(file));
const sources = walk(join(pkgDir, 'src')).filter(isShipped);
await build({
  entryPoints: sources.map((file) => join(pkgDir, 'src', file)),
  outbase: join(pkgDir, 'src'),
  outdir: cjsDir,
  format: 'cjs',
  platform: 'node',
  target: 'es2022',
  // import() becomes require(): the module loaded later (an optional
  // peer's subpath) is the same CommonJS one, and Jest can load it
  supported: { 'dynamic-import': false },
  sourcemap: true,
  logLevel: 'warning',
});
writeFileSync(join(cjsDir, 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);

// 2. ES-module-only dependencies, bundled, and required from their bundle
const require = createRequire(join(pkgDir, 'package.json'));
for (const name of bundled) {
  const entry = require.resolve(name);
  let root = dirname(entry);
  while (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).name !== name) root = dirname(root);
  const meta = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'es2022',
    outfile: join(cjsDir, 'vendor', `${name}.js`),
    metafile: true,
    legalComments: 'inline',
    logLevel: 'warning',
  });
  // the licence of every package the bundle holds, at its top
  const included = new Set();
  for (const input of Object.keys(meta.metafile.inputs)) {
    let dir = dirname(resolve(input));
    while (dir !== dirname(dir)) {
      try {
        const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
        if (manifest.name !== undefined && manifest.version !== undefined) {
          included.add(dir);
          break;
        }
      } catch {}
      dir = dirname(dir);
    }
  }
  const notices = [...included].sort().map((dir) => {
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const licenceFile = readdirSync(dir).find((f) => /^licen[cs]e(\.|$)/i.test(f));
    if (licenceFile === undefined)
      throw new Error(`${manifest.name} has no licence file to ship with its bundle`);
    const text = readFileSync(join(dir, licenceFile), 'utf8').trim();
    return `${manifest.name}@${manifest.version} (${manifest.license}):\n\n${text}`;
  });
  const out = join(cjsDir, 'vendor', `${name}.js`);
  const header = `/*!\n * ${name}, bundled as CommonJS with what it imports.\n *\n${notices
    .join('\n\n')
    .split('\n')
    .map((line) => ` * ${line}`.trimEnd())
    .join('\n')}\n */\n`;
  writeFileSync(out, header + readFileSync(out, 'utf8'));
  // the implementation requires the bundle; the bundle sets __esModule, so
  // its default export is its `default`, not node's whole-module default
  let uses = 0;
  for (const file of walk(cjsDir).filter((f) => f.endsWith('.js') && !f.startsWith(`vendor${sep}`))) {
    const path = join(cjsDir, file);
    const code = readFileSync(path, 'utf8');
    const to = JSON.stringify(specifier(path, out));
    const quoted = JSON.stringify(name);
    const next = code
      .replaceAll(`__toESM(require(${quoted}), 1)`, `__toESM(require(${to}))`)
      .replaceAll(`require(${quoted})`, `require(${to})`);
    if (next !== code) {
      uses++;
      writeFileSync(path, next);
    }
  }
  if (uses === 0) throw new Error(`--bundle ${name}: no file of ${pkg.name} requires it`);
}

// 3. the declarations, copied for `require`
for (const file of walk(dist).filter((f) => !f.startsWith(`cjs${sep}`))) {
  if (file.endsWith('.d.ts')) cpSync(join(dist, file), join(cjsDir, file));
  else if (file.endsWith('.d.ts.map')) {
    // one folder deeper: the map's sources move one step up
    const map = JSON.parse(readFileSync(join(dist, file), 'utf8'));
    map.sources = map.sources.map((s) => posix(join('..', s)));
    mkdirSync(dirname(join(cjsDir, file)), { recursive: true });
    writeFileSync(join(cjsDir, file), JSON.stringify(map));
  }
}

// 4. an ES module per subpath, re-exporting its CommonJS module
const problems = [];
for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (typeof target === 'string') continue;
  const esm = join(pkgDir, target.import.default);
  const cjs = join(pkgDir, target.require.default);
  const implementation = require(cjs);
  const names = Object.keys(implementation)
    .filter((n) => n !== 'default' && n !== '__esModule')
    .sort();
  const text =
    `// ${pkg.name}${subpath.slice(1)} as an ES module: the CommonJS implementation's exports,\n` +
    '// so that import and require() give the same classes and functions.\n' +
    `export {\n${names.map((n) => `  ${n},\n`).join('')}} from ${JSON.stringify(specifier(esm, cjs))};\n`;
  mkdirSync(dirname(esm), { recursive: true });
  writeFileSync(esm, text);
  const loaded = await import(pathToFileURL(esm).href);
  const got = Object.keys(loaded).sort();
  if (got.join() !== names.join()) problems.push(`${subpath}: exports ${got} instead of ${names}`);
  for (const n of names) {
    if (loaded[n] !== implementation[n]) problems.push(`${subpath}: ${n} is not the CommonJS module's`);
  }
}
if (problems.length > 0) {
  console.error(`${pkg.name}: the ES modules differ from the CommonJS ones:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
