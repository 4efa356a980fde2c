// `fetch` through the same stack: `towerDispatcher` from grpc-tower/undici is
// an undici Dispatcher whose requests to one logical origin go through
// discovery → outlier detection → p2c (PeakEWMA) → httpRetry → a deadline,
// over one HTTP/2 session per discovered server. undici's `fetch` and
// `request()` (and Node's own `fetch`) take it as their `dispatcher`.
//
//   npm run fetch -w @grpc-tower/example-http2      (starts two local servers)
import { Readable } from 'node:stream';
import { poll } from '@grpc-tower/discover';
import { towerDispatcher } from 'grpc-tower/undici';
import { fetch, request } from 'undici';
import { type ExampleOptions, type RoundsResult, runAsScript, twoRounds } from './rounds.js';

/** The rounds' tallies, and the bytes each streamed POST delivered. */
export interface FetchExampleResult extends RoundsResult {
  readonly posted: readonly number[];
}

/** The origin the application asks for: a name for the servers, not one of them. */
const ORIGIN = 'http://items.example';

/** Builds the dispatcher, sends two rounds of GETs and a few streamed POSTs, and closes it. */
export async function runFetch(options: ExampleOptions): Promise<FetchExampleResult> {
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
    const rounds = await twoRounds(options, async (i) => {
      const res = await fetch(`${ORIGIN}/items/${i}`, { dispatcher });
      return (await res.json()) as { server: string };
    });
    const posted: number[] = [];
    for (let i = 0; i < 3; i++) {
      // a streamed body: sent with backpressure, kept (up to 1 MiB) so a refused stream can go again
      const body = Readable.from(Array.from({ length: 8 }, () => Buffer.alloc(16 * 1024, i)));
      const res = await request(`${ORIGIN}/items`, { dispatcher, method: 'POST', body });
      posted.push(((await res.body.json()) as { bytes: number }).bytes);
    }
    return { ...rounds, posted };
  } finally {
    await dispatcher.close();
  }
}

runAsScript(import.meta.url, runFetch);
