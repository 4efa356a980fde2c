// The native transport through an HTTP CONNECT proxy from the environment,
// as grpc-js does by default: a real tinyproxy (Debian's), grpc_proxy /
// http_proxy, the no_grpc_proxy exclusion and grpc.enable_http_proxy: 0.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { background } from '@grpc-tower/core';
import { type NativeGrpcEndpoint, nativeGrpcEndpoint } from '@grpc-tower/core/grpc';
import { type EchoServer, insecure, pickHosts, startEchoServer } from '@grpc-tower/testing';
import type * as grpc from '@grpc/grpc-js';
import { firstValueFrom, filter } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { trackCleanups } from '../../balance/src/test/grpc-calls.js';
import { grpcRequest } from '../../core/src/grpc/test/request.js';
import { freePort } from '../../discover/src/test/index.js';

const cleanups = trackCleanups();
const ECHO = '/grpctower.testing.Echo/Unary';
const PROXY_VARS = ['grpc_proxy', 'https_proxy', 'http_proxy', 'no_grpc_proxy', 'no_proxy'] as const;

let dir: string;
let proxy: ChildProcess;
let proxyUrl: string;
let server: EchoServer;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  for (const v of PROXY_VARS) saved[v] = process.env[v];
  const [proxyHost, serverHost] = pickHosts(2) as [string, string];
  server = await startEchoServer({ host: serverHost });
  dir = mkdtempSync(join(tmpdir(), 'grpc-tower-tinyproxy-'));
  chmodSync(dir, 0o777);
  const port = await freePort(proxyHost);
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [
      'User nobody',
      'Group nogroup',
      `Port ${port}`,
      `Listen ${proxyHost}`,
      'Timeout 60',
      `LogFile "${join(dir, 'tinyproxy.log')}"`,
      'LogLevel Info',
      'MaxClients 20',
      'Allow 127.0.0.0/8',
      '',
    ].join('\n'),
  );
  proxy = spawn('/usr/bin/tinyproxy', ['-d', '-c', conf], { stdio: 'ignore' });
  proxyUrl = `http://${proxyHost}:${port}`;
  // up once it accepts connections
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: proxyHost, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterEach(() => {
  for (const v of PROXY_VARS) {
    if (saved[v] === undefined) delete process.env[v];
    else process.env[v] = saved[v];
  }
});

afterAll(async () => {
  const exited = new Promise((resolve) => proxy.once('exit', resolve));
  proxy.kill('SIGKILL');
  await exited;
  await server.stop(0);
  rmSync(dir, { recursive: true, force: true });
});

/** The tunnels the proxy opened to the echo server so far. */
const tunnels = (): number =>
  readFileSync(join(dir, 'tinyproxy.log'), 'utf8')
    .split('\n')
    .filter((line) => line.includes(`: CONNECT ${server.host}:${server.port} `)).length;

function endpoint(channelOptions: grpc.ChannelOptions = {}): NativeGrpcEndpoint {
  const ep = nativeGrpcEndpoint(server.address, { credentials: insecure, channelOptions });
  cleanups.push(() => ep.close({ graceMs: 0 }));
  return ep;
}

describe('an HTTP CONNECT proxy from the environment (tinyproxy)', () => {
  test('grpc_proxy: calls go through the tunnel', async () => {
    process.env.grpc_proxy = proxyUrl;
    const before = tunnels();
    const ep = endpoint();
    const res = await ep.call(grpcRequest(ECHO), background);
    expect(res.unary?.status.code).toBe(0);
    expect(tunnels()).toBe(before + 1);
  });

  test('http_proxy is used when grpc_proxy is not set; no_grpc_proxy and grpc.enable_http_proxy: 0 go direct', async () => {
    delete process.env.grpc_proxy;
    delete process.env.https_proxy;
    process.env.http_proxy = proxyUrl;
    const before = tunnels();
    await endpoint().call(grpcRequest(ECHO), background);
    expect(tunnels()).toBe(before + 1);
    await endpoint({ 'grpc.enable_http_proxy': 0 }).call(grpcRequest(ECHO), background);
    process.env.no_grpc_proxy = `example.test,${server.host.split('.').slice(0, 3).join('.')}.0/24`;
    await endpoint().call(grpcRequest(ECHO), background);
    expect(tunnels()).toBe(before + 1);
  });

  test('a proxy that refuses the tunnel fails the connection with its answer; nothing is sent', async () => {
    // a proxy that wants credentials it was not given
    const [host] = pickHosts(1) as [string];
    const refusing = net.createServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n'));
    });
    await new Promise<void>((resolve) => refusing.listen(0, host, resolve));
    cleanups.push(() => new Promise<void>((resolve) => refusing.close(() => resolve())));
    process.env.grpc_proxy = `http://${host}:${(refusing.address() as net.AddressInfo).port}`;
    const before = server.calls.total;
    const ep = endpoint({ 'grpc.initial_reconnect_backoff_ms': 60_000 });
    await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
    expect(ep.lastError).toMatch(/refused CONNECT .*407 Proxy Authentication Required/);
    expect(server.calls.total).toBe(before);
  });
});
