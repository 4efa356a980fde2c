import { type EchoServer, pickHosts, startEchoServer } from '@grpc-tower/testing';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Dnsmasq, startDnsmasq } from '../../../packages/discover/src/test-support/index.js';
import { run } from './main.js';

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

test('both clients reach the servers behind the DNS name through one balanced channel', async () => {
  const port = servers[0]?.port as number;
  const result = await run({ name: NAME, port, dnsServers: [dnsmasq?.address as string], calls: 12 });

  const names = new Set(servers.map((s) => s.name));
  for (const tally of [result.protoLoader, result.generated]) {
    expect(Object.values(tally).reduce((a, b) => a + b, 0)).toBe(12);
    for (const server of Object.keys(tally)) expect(names.has(server)).toBe(true);
  }
  // the servers saw every call (and nothing else)
  expect(servers.reduce((a, s) => a + s.calls.total, 0)).toBe(24);
});
