// What both clients of the example do: two rounds of GETs with a GOAWAY
// between them, counting who answered, and a command line that runs a
// client against two local servers.
import { pathToFileURL } from 'node:url';
import { startItemServer } from './server.js';

/** Options of a client run. */
export interface ExampleOptions {
  /** The servers, `host:port` (cleartext HTTP/2). */
  readonly servers: readonly string[];
  /** GET requests per round; default 40. */
  readonly requests?: number;
  /** Runs between the two rounds (the test and the CLI make a server send GOAWAY). */
  readonly between?: () => void | Promise<void>;
}

/** Which server answered how many requests, per round, and how many failed. */
export interface RoundsResult {
  readonly first: Readonly<Record<string, number>>;
  readonly second: Readonly<Record<string, number>>;
  readonly failed: number;
}

/** Sends `n` GETs (`get(i)` answers with the server's name), ten at a time; counts answers per server and failures. */
async function round(
  n: number,
  get: (i: number) => Promise<{ server: string }>,
): Promise<{ tally: Record<string, number>; failed: number }> {
  const tally: Record<string, number> = {};
  let failed = 0;
  for (let i = 0; i < n; i += 10) {
    await Promise.all(
      Array.from({ length: Math.min(10, n - i) }, async (_, j) => {
        try {
          const { server } = await get(i + j);
          tally[server] = (tally[server] ?? 0) + 1;
        } catch {
          failed++;
        }
      }),
    );
  }
  return { tally, failed };
}

/** Two rounds of `requests` GETs with `between` in the middle. */
export async function twoRounds(
  options: ExampleOptions,
  get: (i: number) => Promise<{ server: string }>,
): Promise<RoundsResult> {
  const requests = options.requests ?? 40;
  const first = await round(requests, get);
  await options.between?.();
  const second = await round(requests, get);
  return { first: first.tally, second: second.tally, failed: first.failed + second.failed };
}

/**
 * When `moduleUrl` is the script node was started with: starts two local
 * servers, runs `client` against them (the first sends GOAWAY between the
 * rounds), prints the result and what each server saw.
 */
export function runAsScript(moduleUrl: string, client: (options: ExampleOptions) => Promise<unknown>): void {
  if (process.argv[1] === undefined || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  const main = async (): Promise<void> => {
    const servers = await Promise.all(
      ['one', 'two'].map((name) => startItemServer({ host: '127.0.0.1', name, latencyMs: 5 })),
    );
    try {
      const result = await client({
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
