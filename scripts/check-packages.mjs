#!/usr/bin/env node
// Checks what every published package under packages/ ships and says
// about itself, so that its npm tarball works outside this repository:
// - LICENSE is a copy of the root LICENSE (npm packs a LICENSE only from
//   the package's own folder), and README.md is there;
// - `repository` names this repository and the package's folder, and
//   `sideEffects` is false;
// - every `exports` entry has the `@grpc-tower/source` condition (the
//   workspace's own, scoped so that no consumer's tool matches it), `types`
//   and `default`, and `./package.json` is exported;
// - `types` and `typesVersions` give TypeScript's node10 resolution the
//   types of `.` and of every subpath;
// - `files` keeps tests and test helpers out of dist/ and src/.
// Run with `--fix` to copy the root LICENSE into each package.
// The tarballs themselves are checked by packaging/ (`npm pack`, installed
// into projects outside the repository).
import { copyFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

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
  '!dist/**/test-support',
  '!src/**/*.test.ts',
  '!src/**/*.test-d.ts',
  '!src/**/test',
  '!src/**/test-support',
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
  const repo = pkg.repository;
  if (repo?.type !== 'git' || repo.url !== REPOSITORY || repo.directory !== where) {
    problem(`repository must be { "type": "git", "url": "${REPOSITORY}", "directory": "${where}" }`);
  }
  if (pkg.sideEffects !== false) problem('"sideEffects" must be false');

  const exports = pkg.exports ?? {};
  if (exports['./package.json'] !== './package.json')
    problem('exports lacks "./package.json": "./package.json"');
  const subpaths = Object.keys(exports).filter((s) => s !== './package.json');
  for (const subpath of subpaths) {
    const target = exports[subpath];
    const keys = typeof target === 'object' && target !== null ? Object.keys(target) : [];
    if (keys.join(',') !== `${CONDITION},types,default`) {
      problem(`exports["${subpath}"] must have the conditions ${CONDITION}, types, default, in that order`);
    }
  }
  const main = exports['.'];
  if (main === undefined) problem('exports has no "."');
  else if (pkg.types !== main.types) problem(`"types" must be "${main.types}", as exports["."].types`);
  for (const subpath of subpaths.filter((s) => s !== '.')) {
    const mapped = pkg.typesVersions?.['*']?.[subpath.slice(2)];
    if (mapped?.length !== 1 || mapped[0] !== exports[subpath].types) {
      problem(
        `typesVersions["*"]["${subpath.slice(2)}"] must be ["${exports[subpath].types}"], ` +
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
