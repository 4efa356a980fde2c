import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChildEchoServer, spawnEchoServer } from './child.js';
import { createEchoClient, type EchoProtoClient, type EchoReply, type EchoRequest } from './echo.js';
import { activeHandles, expectNoLeaks, pickHosts } from './leaks.js';
import { callbackOutcome, streamOutcome } from './test-helpers.js';

const unary = (client: EchoProtoClient, request: EchoRequest, options: Partial<grpc.CallOptions> = {}) =>
  callbackOutcome<EchoReply>((cb) => client.Unary(request, new grpc.Metadata(), options, cb));

/** True while `pid` names a live (not zombie) process. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('spawnEchoServer', () => {
  const children: ChildEchoServer[] = [];
  const clients: grpc.Client[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(children.splice(0).map((child) => child.kill()));
  });

  const spawnTracked = async (name: string): Promise<ChildEchoServer> => {
    const [host] = pickHosts(1);
    const child = await spawnEchoServer({ host: host!, name });
    children.push(child);
    return child;
  };
  const clientFor = (child: ChildEchoServer): EchoProtoClient => {
    const client = createEchoClient(child.address);
    clients.push(client);
    return client;
  };

  it('answers calls and takes its controls over IPC', async () => {
    const child = await spawnTracked('kid');
    expect(child.pid).not.toBe(process.pid);
    const client = clientFor(child);
    const out = await unary(client, { message: 'hello' });
    expect(out.replies[0]).toMatchObject({ message: 'hello', server: 'kid' });

    await child.failNext(1, grpc.status.UNAVAILABLE, 'child says no');
    const failed = await unary(client, { message: 'x' });
    expect(failed.status).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'child says no' });

    await child.setLatency(60_000);
    const slow = await unary(client, { message: 'y' }, { deadline: Date.now() + 100 });
    expect(slow.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await child.setLatency(0);

    const stream = await streamOutcome(client.ServerStream({ count: 2 }));
    expect(stream.replies).toHaveLength(2);
    const calls = await child.calls();
    expect(calls.total).toBe(4);
    expect(calls.byMethod).toEqual({ Unary: 3, ServerStream: 1, ClientStream: 0, Bidi: 0 });
    await expect(child.setServing('NOT_SERVING')).rejects.toThrow(/health/);
  });

  it('fails calls UNAVAILABLE once SIGKILLed', async () => {
    const before = activeHandles();
    const child = await spawnTracked('doomed');
    const client = clientFor(child);
    expect((await unary(client, { message: 'up' })).status.code).toBe(grpc.status.OK);

    const call = client.ServerStream({ count: 2, delayMs: 60_000 });
    const inFlight = streamOutcome(call);
    await new Promise((resolve) => call.once('metadata', resolve));
    const exit = await child.kill();
    expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
    expect((await inFlight).status.code).toBe(grpc.status.UNAVAILABLE);
    expect((await unary(client, { message: 'down' })).status.code).toBe(grpc.status.UNAVAILABLE);
    await expect(child.calls()).rejects.toThrow(/not running/);

    client.close();
    await expectNoLeaks(before, { settleMs: 3000 });
  });

  it('stalls while paused and answers after resume', async () => {
    const child = await spawnTracked('sleepy');
    const client = clientFor(child);
    expect((await unary(client, { message: 'up' })).status.code).toBe(grpc.status.OK);

    child.pause();
    const waiting = unary(client, { message: 'patient' });
    const hurried = await unary(client, { message: 'hurried' }, { deadline: Date.now() + 300 });
    expect(hurried.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    child.resume();
    const out = await waiting;
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies[0]?.message).toBe('patient');
  });

  it('stops gracefully, letting a call in flight finish', async () => {
    const child = await spawnTracked('tidy');
    const client = clientFor(child);
    const call = client.ServerStream({ count: 2, delayMs: 50 });
    const inFlight = streamOutcome(call);
    await new Promise((resolve) => call.once('metadata', resolve));
    const exit = await child.stop(10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    const out = await inFlight;
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies).toHaveLength(2);
    expect(await child.exited).toEqual(exit);
  });

  it('rejects with the reason when the child cannot bind', async () => {
    const first = await spawnTracked('first');
    await expect(spawnEchoServer({ host: first.host, port: first.port })).rejects.toThrow(
      new RegExp(`could not start on ${first.address.replaceAll('.', '\\.')}.*EADDRINUSE`),
    );
  });

  it('exits when its parent dies', async () => {
    const [host] = pickHosts(1);
    const main = fileURLToPath(new URL('./child-main.ts', import.meta.url));
    const dir = fileURLToPath(new URL('..', import.meta.url));
    // a parent that starts the child, prints its pid once it is ready, then waits to be killed
    const args = ['--import', 'tsx', main, JSON.stringify({ host })];
    const script = `
      import { spawn } from 'node:child_process';
      const c = spawn(process.execPath, ${JSON.stringify(args)},
        { cwd: ${JSON.stringify(dir)}, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      c.on('message', (m) => { if (m.type === 'ready') console.log(String(c.pid)); });
    `;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const parentExited = new Promise((resolve) => parent.once('exit', resolve));
    const pid = await new Promise<number>((resolve, reject) => {
      parent.stdout.setEncoding('utf8');
      parent.stdout.once('data', (line: string) => resolve(Number.parseInt(line, 10)));
      parent.once('exit', () => reject(new Error('parent exited before the child was ready')));
    });
    expect(alive(pid)).toBe(true);
    parent.kill('SIGKILL');
    await parentExited;
    for (let i = 0; i < 500 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    const stillAlive = alive(pid);
    if (stillAlive) process.kill(pid, 'SIGKILL');
    expect(stillAlive).toBe(false);
  });
});
