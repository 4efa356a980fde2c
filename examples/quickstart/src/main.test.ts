import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type EchoServer, pickHosts, startEchoServer } from '@grpc-tower/testing';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Dnsmasq, startDnsmasq } from '../../../packages/discover/src/test/index.js';
import { run } from './main.js';
import { runProtoLoader } from './proto-loader.js';

const NAME = 'echo.quickstart.test';
let dnsmasq: Dnsmasq | undefined;
const servers: EchoServer[] = [];

/** Two echo servers on distinct loopback hosts and one port (DNS A records carry no port). */
async function startOnOnePort(hosts: readonly string[]): Promise<EchoServer[]> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const started: EchoServer[] = [];
    try {
      for (const [i, host] of hosts.entries()) {
        started.push(await startEchoServer({ host, port: started[0]?.port ?? 0, name: `server-${i + 1}` }));
      }
      return started;
    } catch {
      for (const s of started) s.kill();
    }
  }
  throw new Error('could not start the servers on one port');
}

beforeAll(async () => {
  const hosts = pickHosts(2);
  servers.push(...(await startOnOnePort(hosts)));
  dnsmasq = await startDnsmasq({ hosts: { [NAME]: hosts } });
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop(0)));
  await dnsmasq?.close();
});

const sum = (tally: Readonly<Record<string, number>>): number =>
  Object.values(tally).reduce((a, b) => a + b, 0);

test('the generated client and the proto-loader client reach the servers behind the DNS name', async () => {
  const port = servers[0]?.port as number;
  const target = `dns://${dnsmasq?.address}/${NAME}:${port}`;
  const before = servers.reduce((a, s) => a + s.calls.total, 0);
  const generated = await run(target, 12);
  const loader = await runProtoLoader(target, 12);

  const names = new Set(servers.map((s) => s.name));
  for (const tally of [generated, loader]) {
    expect(sum(tally)).toBe(12);
    for (const server of Object.keys(tally)) expect(names.has(server)).toBe(true);
  }
  // the servers saw every call (and nothing else)
  expect(servers.reduce((a, s) => a + s.calls.total, 0) - before).toBe(24);
});

describe('bundled with esbuild', () => {
  const dir = mkdtempSync(join(tmpdir(), 'grpc-tower-quickstart-'));
  const bundle = join(dir, 'quickstart.mjs');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('the bundle of the quickstart client runs against a static list and exits by itself', async () => {
    await build({
      entryPoints: [fileURLToPath(new URL('./main.ts', import.meta.url))],
      outfile: bundle,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // the workspace packages from their sources, since nothing here has been built
      conditions: ['@grpc-tower/source'],
      // grpc-js is CommonJS: give its require() calls one in the ES module bundle
      banner: {
        js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
      logLevel: 'silent',
    });
    // a client of a static list does not carry the etcd client
    expect(readFileSync(bundle, 'utf8')).not.toMatch(/node_modules\/etcd3\//);
    // (and a module it did bundle is marked by its path, so the check can see one)
    expect(readFileSync(bundle, 'utf8')).toMatch(/node_modules\/@grpc\/grpc-js\//);

    const target = `ipv4:${servers.map((s) => s.address).join(',')}`;
    const child = spawn(process.execPath, [bundle, '--target', target, '--calls', '8'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('exit', (c, s) => resolve([c, s])),
    );
    clearTimeout(killer);
    // exited on its own (no SIGKILL), successfully, after every call got a reply
    expect({ code, signal, stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    const tally = JSON.parse(stdout) as Record<string, number>;
    expect(sum(tally)).toBe(8);
    for (const server of Object.keys(tally)) expect(servers.map((s) => s.name)).toContain(server);
  });
});
