// npm run demo: three echo servers in child processes on 127.0.0.x, found
// through an in-process registry polled by grpc-tower, and a client that
// sends steady traffic through discovery → p2c (PeakEWMA) → retry → timeout while
// one server crashes and another appears. Prints per-server traffic and
// every failed call, measured.
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { type Service, ServiceBuilder, timeout } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect, poll } from '@grpc-tower/discover';
import { retry, retryBudget } from '@grpc-tower/retry';
import {
  type ChildEchoServer,
  createEchoClient,
  loadEchoPackage,
  spawnEchoServer,
} from '@grpc-tower/testing';

const quick = process.argv.includes('--quick');
const phaseMs = quick ? 1_500 : 4_000;
const registry = new Set<string>(); // what a real registry (Consul, etcd, DNS) would hold

const log = (msg: string) =>
  console.log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
const t0 = performance.now();

async function main(): Promise<void> {
  const servers = new Map<string, ChildEchoServer>();
  for (const [name, host] of [
    ['A', '127.0.0.21'],
    ['B', '127.0.0.22'],
  ] as const) {
    const s = await spawnEchoServer({ host, name });
    servers.set(name, s);
    registry.add(s.address);
  }
  log(`servers up: ${[...servers].map(([n, s]) => `${n}=${s.address}`).join(', ')}`);

  const discovery = poll(async () => [...registry], { name: 'registry', intervalMs: 500 });
  const balancer = p2c(
    connect(discovery, (addr) => grpcEndpoint(addr.address)),
    { target: 'echo.demo' },
  );
  const stack: Service<GrpcRequest, GrpcResponse> = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: 2_000 }))
    .layer(retry({ maxAttempts: 3, budget: retryBudget() }))
    .service(balancer);
  const { EchoService } = loadEchoPackage();
  const channel = createChannel(stack, {
    target: 'echo.demo',
    services: [EchoService],
    readiness: balancer,
    owns: [balancer],
  });
  const client = createEchoClient('echo.demo', { channelOverride: channel });

  const perServer = new Map<string, number>();
  const failures: string[] = [];
  let phase = 'steady';
  const perPhase = new Map<string, { ok: number; failed: number }>();
  let running = true;
  const worker = async (): Promise<void> => {
    while (running) {
      await new Promise<void>((resolve) => {
        client.Unary(
          { message: 'hi' },
          new grpc.Metadata(),
          { deadline: Date.now() + 3_000 },
          (err, reply) => {
            const p = perPhase.get(phase) ?? { ok: 0, failed: 0 };
            perPhase.set(phase, p);
            if (err) {
              p.failed++;
              failures.push(`${phase}: ${err.code} ${err.details}`);
            } else if (reply) {
              p.ok++;
              perServer.set(reply.server, (perServer.get(reply.server) ?? 0) + 1);
            }
            resolve();
          },
        );
      });
    }
  };
  const workers = Array.from({ length: 8 }, worker);
  const report = (): void => {
    const parts = [...perServer].sort().map(([n, c]) => `${n}: ${c}`);
    log(`calls per server so far — ${parts.join(', ')}; failed: ${failures.length}`);
  };

  await new Promise((r) => setTimeout(r, phaseMs));
  report();

  phase = 'A crashed';
  log('SIGKILL server A');
  const a = servers.get('A')!;
  await a.kill('SIGKILL');
  registry.delete(a.address);
  await new Promise((r) => setTimeout(r, phaseMs));
  report();

  phase = 'C appeared';
  const c = await spawnEchoServer({ host: '127.0.0.23', name: 'C' });
  servers.set('C', c);
  registry.add(c.address);
  log(`server C appears in the registry at ${c.address}`);
  const before = perServer.get('C') ?? 0;
  const appeared = performance.now();
  while ((perServer.get('C') ?? 0) === before && performance.now() - appeared < 5_000) {
    await new Promise((r) => setTimeout(r, 5));
  }
  log(`C took its first call ${(performance.now() - appeared).toFixed(0)} ms after it appeared`);
  await new Promise((r) => setTimeout(r, phaseMs));
  report();

  running = false;
  await Promise.all(workers);
  console.log('\nsummary');
  console.log('phase         ok     failed');
  for (const [name, p] of perPhase)
    console.log(`${name.padEnd(12)} ${String(p.ok).padStart(6)} ${String(p.failed).padStart(6)}`);
  if (failures.length > 0) console.log(`failed calls:\n  ${failures.slice(0, 10).join('\n  ')}`);
  client.close();
  await channel.closeAsync();
  await Promise.all([...servers.values()].filter((s) => s !== a).map((s) => s.stop()));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
