#!/usr/bin/env node
// Checks what every published package under packages/ ships and says
// about itself, so that its npm tarball works outside this repository:
// - LICENSE is a copy of the root LICENSE (npm packs a LICENSE only from
//   the package's own folder), and README.md is there;
// - `repository` names this repository and the package's folder, and
//   `sideEffects` is false;
// - every `exports` entry has the `@grpc-tower/source` condition (the
//   workspace's own, scoped so that no consumer's tool matches it), then
//   `import` (`types`, `default` under dist/) and `require` (`types`,
//   `default` under dist/cjs/, the same file names), and `./package.json`
//   is exported;
// - the build is the one that makes the CommonJS implementation and its
//   ES wrappers (scripts/build-package.mjs), and tsc emits declarations
//   only (the ES files under dist/ are the wrappers);
// - `main` and `types` are the CommonJS `.`, and `typesVersions` gives
//   TypeScript's node10 resolution the CommonJS types of every subpath;
// - `files` keeps tests and test helpers out of dist/ and src/.
// Run with `--fix` to copy the root LICENSE into each package.
// The tarballs themselves are checked by packaging/ (`npm pack`, installed
// into projects outside the repository).
import { copyFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const fix = process.argv.includes('--fix');
const license = readFileSync(join(root, 'LICENSE'), 'utf8');
const REPOSITORY = 'git+https://github.com/grpc-tower/grpc-tower.git';
const CONDITION = '@grpc-tower/source';
/** What `files` must leave out: tests and test helpers, emitted or not. */
const EXCLUDED = [
  '!dist/**/*.test.*',
  '!dist/**/*.test-d.*',
  '!dist/**/test',
  '!src/**/*.test.ts',
  '!src/**/*.test-d.ts',
  '!src/**/test',
];

const problems = [];
let checked = 0;
for (const dir of readdirSync(join(root, 'packages')).sort()) {
  const pkgDir = join(root, 'packages', dir);
  const file = join(pkgDir, 'package.json');
  if (!existsSync(file)) continue;
  const pkg = JSON.parse(readFileSync(file, 'utf8'));
  if (pkg.private === true) continue;
  checked++;
  const where = `packages/${dir}`;
  const problem = (text) => problems.push(`${where}: ${text}`);

  const licenseFile = join(pkgDir, 'LICENSE');
  if (!existsSync(licenseFile) || readFileSync(licenseFile, 'utf8') !== license) {
    if (fix) copyFileSync(join(root, 'LICENSE'), licenseFile);
    else
      problem('LICENSE is missing or differs from the root LICENSE (node scripts/check-packages.mjs --fix)');
  }
  if (!existsSync(join(pkgDir, 'README.md'))) problem('README.md is missing');
  // test helpers live in folders named test/, the one name the build, `files` and check-deps leave out
  for (const entry of readdirSync(join(pkgDir, 'src'), { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory() && entry.name !== 'test' && /^tests?[-_]/i.test(entry.name)) {
      const at = relative(pkgDir, join(entry.parentPath, entry.name));
      problem(`${at}: test helpers go in a folder named test/, which the build and "files" leave out`);
    }
  }
  const repo = pkg.repository;
  if (repo?.type !== 'git' || repo.url !== REPOSITORY || repo.directory !== where) {
    problem(`repository must be { "type": "git", "url": "${REPOSITORY}", "directory": "${where}" }`);
  }
  if (pkg.sideEffects !== false) problem('"sideEffects" must be false');

  const exports = pkg.exports ?? {};
  if (exports['./package.json'] !== './package.json')
    problem('exports lacks "./package.json": "./package.json"');
  const subpaths = Object.keys(exports).filter((s) => s !== './package.json');
  const keysOf = (value) => (typeof value === 'object' && value !== null ? Object.keys(value).join(',') : '');
  for (const subpath of subpaths) {
    const target = exports[subpath];
    if (keysOf(target) !== `${CONDITION},import,require`) {
      problem(`exports["${subpath}"] must have the conditions ${CONDITION}, import, require, in that order`);
      continue;
    }
    if (keysOf(target.import) !== 'types,default' || keysOf(target.require) !== 'types,default') {
      problem(`exports["${subpath}"].import and .require must each have the conditions types, default`);
      continue;
    }
    for (const key of ['types', 'default']) {
      const esm = target.import[key];
      if (!esm.startsWith('./dist/') || esm.startsWith('./dist/cjs/'))
        problem(`exports["${subpath}"].import.${key} must be under ./dist/, outside ./dist/cjs/`);
      else if (target.require[key] !== esm.replace('./dist/', './dist/cjs/'))
        problem(`exports["${subpath}"].require.${key} must be "${esm.replace('./dist/', './dist/cjs/')}"`);
    }
  }
  const build = `node ../../scripts/build-package.mjs`;
  if (pkg.scripts?.build !== build && !pkg.scripts?.build?.startsWith(`${build} `))
    problem(`scripts.build must be "${build}" (with --bundle <package> for an ES-module-only dependency)`);
  const tsconfig = JSON.parse(readFileSync(join(pkgDir, 'tsconfig.build.json'), 'utf8'));
  if (tsconfig.compilerOptions?.emitDeclarationOnly !== true)
    problem('tsconfig.build.json must set "emitDeclarationOnly": true (the code is built as CommonJS)');
  const main = exports['.']?.require;
  if (main === undefined) problem('exports has no "."');
  else {
    if (pkg.main !== main.default)
      problem(`"main" must be "${main.default}", as exports["."].require.default`);
    if (pkg.types !== main.types) problem(`"types" must be "${main.types}", as exports["."].require.types`);
  }
  for (const subpath of subpaths.filter((s) => s !== '.')) {
    const mapped = pkg.typesVersions?.['*']?.[subpath.slice(2)];
    const types = exports[subpath]?.require?.types;
    if (mapped?.length !== 1 || mapped[0] !== types) {
      problem(
        `typesVersions["*"]["${subpath.slice(2)}"] must be ["${types}"], ` +
          `so that moduleResolution node10 finds the types of ${pkg.name}${subpath.slice(1)}`,
      );
    }
  }
  const files = pkg.files ?? [];
  for (const entry of ['dist', 'src', ...EXCLUDED]) {
    if (!files.includes(entry)) problem(`files lacks "${entry}"`);
  }
}

if (problems.length > 0) {
  console.error(`check-packages: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join('\n')}`);
  process.exit(1);
}
console.log(`check-packages: ${checked} published packages, LICENSE, README, manifest and files as required`);
