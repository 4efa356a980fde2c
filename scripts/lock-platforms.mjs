#!/usr/bin/env node
// Keeps package-lock.json usable by `npm ci` when the registry this
// project installs from lacks some platform builds of a native tool
// (biome's and turbo's binaries for macOS, Windows, Android, musl).
// `npm install` then leaves those optional packages out of the lockfile,
// and `npm ci` refuses a lockfile that does not list every optional
// dependency. This script adds an entry for each missing one, with the
// os/cpu/libc read from its name, so `npm ci` skips it on other platforms
// exactly as it would with a complete lockfile. Run it after `npm install`
// changes the lockfile: `node scripts/lock-platforms.mjs`
// (`--check` only reports, and `npm test` runs that check).
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;

const platformOf = (name) => {
  const base = name.split('/').pop();
  const osMap = {
    darwin: 'darwin',
    linux: 'linux',
    win32: 'win32',
    windows: 'win32',
    android: 'android',
    freebsd: 'freebsd',
  };
  const cpuMap = { x64: 'x64', 64: 'x64', arm64: 'arm64', arm: 'arm', ia32: 'ia32' };
  const parts = base.replace(/^cli-/, '').split('-');
  const os = parts.find((p) => osMap[p]);
  const cpu = parts.find((p) => cpuMap[p]);
  if (os === undefined || cpu === undefined) return undefined;
  const out = { cpu: [cpuMap[cpu]], os: [osMap[os]] };
  if (parts.includes('musl')) out.libc = ['musl'];
  return out;
};

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  if (!entry.optionalDependencies) continue;
  const prefix = path === '' ? '' : `${path}/`;
  for (const [dep, version] of Object.entries(entry.optionalDependencies)) {
    const nested = `${prefix}node_modules/${dep}`;
    const hoisted = `node_modules/${dep}`;
    if (packages[nested] || packages[hoisted]) continue;
    const platform = platformOf(dep);
    if (platform === undefined) continue;
    packages[hoisted] = {
      version,
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      ...platform,
    };
    added++;
  }
}
if (process.argv.includes('--check')) {
  if (added > 0) {
    console.error(
      `package-lock.json misses ${added} optional platform package(s), so \`npm ci\` would fail: run node scripts/lock-platforms.mjs`,
    );
    process.exit(1);
  }
  process.exit(0);
}
if (added > 0) {
  lock.packages = Object.fromEntries(
    Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
  );
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
}
console.log(`lock-platforms: ${added} missing platform package(s) listed`);
