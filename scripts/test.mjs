#!/usr/bin/env node
// `npm test`: installs the system servers the integration tests need (when
// missing), type-checks and lints every workspace, then runs every test.
import { spawnSync } from 'node:child_process';

function run(cmd, args, env = {}) {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`\n${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

const extra = process.argv.slice(2);
run(process.execPath, ['scripts/lock-platforms.mjs', '--check']);
run(process.execPath, ['scripts/check-deps.mjs']);
run(process.execPath, ['scripts/check-packages.mjs']);
run(process.execPath, ['scripts/check-exports.mjs']);
run(process.execPath, ['scripts/setup-system.mjs']);
run('npx', ['turbo', 'run', 'typecheck', '--output-logs=errors-only'], { TURBO_TELEMETRY_DISABLED: '1' });
// bench/, reliability/ and packaging/ are not workspaces: type-check them here
run('npx', ['tsc', '--noEmit', '-p', 'bench']);
run('npx', ['tsc', '--noEmit', '-p', 'reliability']);
run('npx', ['tsc', '--noEmit', '-p', 'packaging']);
run('npx', ['biome', 'check', '.']);
run('npx', ['vitest', 'run', ...extra]);
