// towerDispatcher against nginx serving HTTP/2 (Debian's nginx, h2c): fetch
// balanced over a pool of nginx servers, and `nginx -s reload` (GOAWAY on
// every connection) under load without losing a request.
import { staticList } from '@grpc-tower/discover';
import { pickHosts } from '@grpc-tower/testing';
import { fetch, request } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { freePort } from '../../../discover/src/test/index.js';
import { type TowerDispatcher, towerDispatcher } from './index.js';
import { type NginxPool, startNginxPool } from './test/nginx.js';

const pools: NginxPool[] = [];
const dispatchers: TowerDispatcher[] = [];
afterEach(async () => {
  await Promise.all(dispatchers.splice(0).map((d) => d.destroy()));
  await Promise.all(pools.splice(0).map((p) => p.stop()));
});

async function pool(keepaliveRequests?: number): Promise<NginxPool> {
  const hosts = pickHosts(3);
  const port = await freePort(hosts[0] as string);
  const started = await startNginxPool({
    hosts,
    port,
    ...(keepaliveRequests === undefined ? {} : { keepaliveRequests }),
  });
  pools.push(started);
  return started;
}

function dispatcherOver(nginx: NginxPool): { dispatcher: TowerDispatcher; origin: string } {
  const origin = `http://pool.test:${nginx.port}`;
  const dispatcher = towerDispatcher(origin, { discovery: staticList(nginx.addresses) });
  dispatchers.push(dispatcher);
  return { dispatcher, origin };
}

interface Answer {
  readonly server: string;
  readonly uri: string;
}

describe('nginx over HTTP/2', () => {
  test('fetch through the dispatcher to a pool of nginx servers: each answers its share', async () => {
    const nginx = await pool();
    const { dispatcher, origin } = dispatcherOver(nginx);
    const n = 150;
    const answers: Answer[] = [];
    for (let i = 0; i < n; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: 10 }, async (_, j) => {
          const res = await fetch(`${origin}/items/${i + j}`, { dispatcher });
          expect(res.status).toBe(200);
          expect(res.headers.get('content-type')).toBe('application/json');
          return (await res.json()) as Answer;
        }),
      );
      answers.push(...batch);
    }
    expect(answers.map((a) => a.uri)).toEqual(Array.from({ length: n }, (_, i) => `/items/${i}`));
    const tally: Record<string, number> = {};
    for (const a of answers) tally[a.server] = (tally[a.server] ?? 0) + 1;
    console.log(`fetch over three nginx servers, ${n} requests: ${JSON.stringify(tally)}`);
    for (const name of ['nginx-1', 'nginx-2', 'nginx-3']) expect(tally[name] ?? 0).toBeGreaterThan(n * 0.2);
    // one connection per server carried all of its requests
    expect(new Set((await nginx.requests()).map((r) => r.connection)).size).toBe(3);
  });

  test('nginx -s reload under load (GOAWAY on every connection) loses no request, POSTs included', async () => {
    // nginx also closes a connection with GOAWAY after 200 requests here
    const nginx = await pool(200);
    const { dispatcher, origin } = dispatcherOver(nginx);
    const n = 1500;
    let sent = 0;
    const failures: string[] = [];
    const statuses: number[] = [];
    const reloads = (async () => {
      for (const at of [300, 800]) {
        while (sent < at) await new Promise((resolve) => setTimeout(resolve, 5));
        await nginx.reload();
      }
    })();
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        while (sent < n) {
          const i = sent++;
          try {
            if (i % 2 === 0) {
              const res = await fetch(`${origin}/get/${i}`, { dispatcher });
              statuses.push(res.status);
              await res.arrayBuffer();
            } else {
              const res = await request(`${origin}/post/${i}`, {
                dispatcher,
                method: 'POST',
                body: `n=${i}`,
              });
              statuses.push(res.statusCode);
              await res.body.dump();
            }
          } catch (err) {
            failures.push(`${i}: ${String((err as Error).cause ?? err)}`);
          }
        }
      }),
    );
    await reloads;
    expect(failures).toEqual([]);
    expect(statuses.length).toBe(n);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const logged = await nginx.requests();
    const connections = new Set(logged.map((r) => r.connection)).size;
    const stats = dispatcher.stats().retry;
    console.log(
      `nginx reload twice under load, ${n} requests: ${connections} connections, ` +
        `${stats?.transparentRetries} transparent re-sends, ${stats?.retries} retries, no failure`,
    );
    // the clients moved to new connections after each GOAWAY
    expect(connections).toBeGreaterThan(6);
    // a POST that nginx answered was never sent again
    const posts = logged.filter((r) => r.method === 'POST').map((r) => r.uri);
    expect(posts.length).toBe(n / 2);
    expect(new Set(posts).size).toBe(n / 2);
  }, 60_000);
});
