import { Status } from '@grpc-tower/core';
import { pickHosts } from '@grpc-tower/testing';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { TokenSource } from './layers.js';
import { run } from './main.js';
import { type AuthServer, startAuthServer } from './server.js';

let server: AuthServer | undefined;
beforeAll(async () => {
  const [host] = pickHosts(1);
  server = await startAuthServer(host as string);
});
afterAll(async () => {
  await server?.close();
});

test('the auth layer sends a token, refreshes it once when it is revoked, and the log sees every attempt', async () => {
  const s = server as AuthServer;
  let fetched = 0;
  const fetchToken: TokenSource = async () => {
    const token = `token-${++fetched}`;
    s.allow(token);
    return token;
  };
  const result = await run({ address: s.address, fetchToken, calls: 8, between: () => s.revoke('token-1') });

  expect(result.failed).toBe(0);
  expect(result.replies).toHaveLength(16);
  expect(result.replies.every((r) => r.startsWith('hello #'))).toBe(true);
  // one token for the first round, one more after the revocation, shared by all calls
  expect(fetched).toBe(2);
  expect(new Set(s.seen)).toEqual(new Set(['token-1', 'token-2']));
  // the log layer sat below retry: every attempt is there, the rejected ones with their code and server
  await expect.poll(() => result.attempts.length).toBe(s.seen.length);
  const rejected = result.attempts.filter((a) => a.code === Status.UNAUTHENTICATED);
  expect(rejected.length).toBe(s.seen.filter((t) => t === 'token-1').length - 8);
  expect(rejected.every((a) => a.endpoint === s.address && a.attempt === 0)).toBe(true);
  expect(result.attempts.filter((a) => a.code === Status.OK)).toHaveLength(16);
});
