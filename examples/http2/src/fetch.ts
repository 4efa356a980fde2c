// `fetch` through the same stack: `towerDispatcher` from grpc-tower/undici is
// an undici Dispatcher whose requests to one logical origin go through
// discovery → outlier detection → p2c (PeakEWMA) → httpRetry → a deadline,
// over one HTTP/2 session per discovered server. undici's `fetch` and
// `request()` (and Node's own `fetch`) take it as their `dispatcher`.
//
//   npm run fetch -w @grpc-tower/example-http2      (starts two local servers)
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { poll } from '@grpc-tower/discover';
import { towerDispatcher } from 'grpc-tower/undici';
import { fetch, request } from 'undici';
import { startItemServer } from './server.js';

/** Options of {@link runFetch}. */
export interface FetchExampleOptions {
  /** The servers, `host:port` (cleartext HTTP/2). */
  readonly servers: readonly string[];
  /** GET requests per round; default 40. */
  readonly requests?: number;
  /** Runs between the two rounds (the test and the CLI make a server send GOAWAY). */
  readonly between?: () => void | Promise<void>;
}

/** Which server answered how many GETs, per round; the bytes each POST delivered; failures. */
export interface FetchExampleResult {
  readonly first: Readonly<Record<string, number>>;
  readonly second: Readonly<Record<string, number>>;
  readonly posted: readonly number[];
  readonly failed: number;
}

/** The origin the application asks for: a name for the servers, not one of them. */
const ORIGIN = 'http://items.example';

/** Sends `n` GETs with `fetch`, ten at a time; counts answers per server and failures. */
async function round(
  dispatcher: ReturnType<typeof towerDispatcher>,
  n: number,
): Promise<{ tally: Record<string, number>; failed: number }> {
  const tally: Record<string, number> = {};
  let failed = 0;
  for (let i = 0; i < n; i += 10) {
    await Promise.all(
      Array.from({ length: Math.min(10, n - i) }, async (_, j) => {
        try {
          const res = await fetch(`${ORIGIN}/items/${i + j}`, { dispatcher });
          const body = (await res.json()) as { server: string };
          tally[body.server] = (tally[body.server] ?? 0) + 1;
        } catch {
          failed++;
        }
      }),
    );
  }
  return { tally, failed };
}

/** Builds the dispatcher, sends two rounds of GETs and a few streamed POSTs, and closes it. */
export async function runFetch(options: FetchExampleOptions): Promise<FetchExampleResult> {
  const requests = options.requests ?? 40;
  // #region dispatcher
  // discovery: any function that returns the current addresses, polled every second
  const registry = new Set(options.servers);
  const dispatcher = towerDispatcher(ORIGIN, {
    discovery: poll(async () => [...registry], { name: 'items', intervalMs: 1_000 }),
    retry: { maxAttempts: 3 }, // httpRetry: refused streams always, GETs on 502/503/504 too
    timeoutMs: 2_000, // one deadline over every attempt and the response body
  });
  // #endregion dispatcher
  try {
    const first = await round(dispatcher, requests);
    await options.between?.();
    const second = await round(dispatcher, requests);
    const posted: number[] = [];
    for (let i = 0; i < 3; i++) {
      // a streamed body: sent with backpressure, kept (up to 1 MiB) so a refused stream can go again
      const body = Readable.from(Array.from({ length: 8 }, () => Buffer.alloc(16 * 1024, i)));
      const res = await request(`${ORIGIN}/items`, { dispatcher, method: 'POST', body });
      posted.push(((await res.body.json()) as { bytes: number }).bytes);
    }
    return { first: first.tally, second: second.tally, posted, failed: first.failed + second.failed };
  } finally {
    await dispatcher.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const main = async (): Promise<void> => {
    const servers = await Promise.all(
      ['one', 'two'].map((name) => startItemServer({ host: '127.0.0.1', name, latencyMs: 5 })),
    );
    try {
      const result = await runFetch({
        servers: servers.map((s) => s.address),
        between: () => servers[0]?.goaway(),
      });
      console.log(JSON.stringify(result, null, 2));
      console.log(
        servers.map((s) => `${s.name}: ${s.sessions} HTTP/2 session(s), ${s.answered} requests`).join('\n'),
      );
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  };
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
