/**
 * Heap per connected, idle gRPC connection owner: a native `grpcEndpoint`,
 * or a plain grpc-js `Channel` (with a subchannel pool of its own, so each
 * holds its own connection, as each endpoint does). Measured in a fresh
 * process per kind (started by {@link measureIdleHeap} through
 * `runProbe`, with `--expose-gc` and without JIT), never in the bench
 * process, whose heap grows and shrinks with everything it ran before.
 *
 * In the child: a few of the kind are connected and closed first (code
 * loaded and caches filled on first use are not the endpoints' heap); then
 * the used heap after full collections; then `count` of the kind, each
 * connected to the server and left idle; then the used heap again, twice,
 * a moment apart. The difference, over `count`, is the heap each keeps; the
 * change between the two last readings is the noise of the measurement.
 * The probe fails, saying why, unless every one is still connected (one
 * more socket each) and the heap they keep is positive and well above
 * that noise. Prints one JSON line, an {@link IdleHeap}.
 *
 * @module
 */
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { grpcEndpoint } from '@grpc-tower/core/grpc';
import { insecure } from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { runProbe, runProbeMain, settledHeap } from './fresh-process.js';
import { sleep } from './rounds.js';

/** What holds each idle connection: a native endpoint or a grpc-js channel. */
export type IdleKind = 'native' | 'grpc-js';

/**
 * One probe's result.
 *
 * @example
 * ```ts
 * const h: IdleHeap = { kind: 'native', count: 50, bytesPerEndpoint: 9_000, keptBytes: 450_000, noiseBytes: 120 };
 * ```
 */
export interface IdleHeap {
  readonly kind: IdleKind;
  readonly count: number;
  /** Heap each connected, idle one keeps, in bytes. */
  readonly bytesPerEndpoint: number;
  /** Heap all `count` keep, in bytes. */
  readonly keptBytes: number;
  /** How much the settled heap moved between two readings with nothing happening, in bytes. */
  readonly noiseBytes: number;
}

const SELF = fileURLToPath(import.meta.url);
const KINDS: readonly IdleKind[] = ['native', 'grpc-js'];
const WARM_UP = 4;
/** How long each may take to connect, unless told. */
const CONNECT_MS = 20_000;
/** How long the connections stay idle before the heap is read (settings exchanged, timers armed). */
const IDLE_MS = 500;
/** The heap kept must be at least this many times the measurement's noise. */
const NOISE_FACTOR = 10;

/**
 * Measures, in a fresh process, the heap that `count` connected, idle
 * `kind`s keep, each connected to the gRPC server at `address`; the probe
 * fails if one has not connected within `connectMs` (20 s unless given).
 *
 * @example
 * ```ts
 * const native = await measureIdleHeap('native', '127.0.0.254:50051', 50);
 * const grpcJs = await measureIdleHeap('grpc-js', '127.0.0.254:50051', 50);
 * native.bytesPerEndpoint / grpcJs.bytesPerEndpoint; // the ratio
 * ```
 */
export function measureIdleHeap(
  kind: IdleKind,
  address: string,
  count: number,
  { connectMs = CONNECT_MS }: { readonly connectMs?: number } = {},
): Promise<IdleHeap> {
  return runProbe<IdleHeap>(
    SELF,
    [kind, address, String(count), String(connectMs)],
    `idle heap probe (${kind})`,
  );
}

/** One connected owner of a connection, and how to let it go. */
interface Connected {
  readonly close: () => Promise<void> | void;
}

let connectMs = CONNECT_MS;

function waitReady(what: string, ready: (done: (err?: Error) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what} did not connect within ${connectMs} ms`)),
      connectMs,
    );
    ready((err) => {
      clearTimeout(timer);
      if (err === undefined) resolve();
      else reject(err);
    });
  });
}

async function connectNative(address: string): Promise<Connected> {
  const ep = grpcEndpoint(address, { credentials: insecure });
  await waitReady(`a native endpoint to ${address}`, (done) => {
    const sub = ep.readiness$.subscribe((r) => {
      if (r !== 'ready') return;
      queueMicrotask(() => sub.unsubscribe());
      done();
    });
  });
  return {
    close: async () => {
      if (ep.readiness !== 'ready')
        throw new Error(`a native endpoint to ${address} is ${ep.readiness}, not ready`);
      await ep.close({ graceMs: 0 });
    },
  };
}

async function connectGrpcJs(address: string): Promise<Connected> {
  const ch = new grpc.Channel(address, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  await waitReady(`a grpc-js channel to ${address}`, (done) => {
    const wait = (): void => {
      const state = ch.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) done();
      else ch.watchConnectivityState(state, Date.now() + connectMs, (err) => (err ? done(err) : wait()));
    };
    wait();
  });
  return {
    close: () => {
      const state = ch.getConnectivityState(false);
      if (state !== grpc.connectivityState.READY) {
        throw new Error(`a grpc-js channel to ${address} is ${grpc.connectivityState[state]}, not READY`);
      }
      ch.close();
    },
  };
}

/**
 * The sockets this process has open, from `/proc/self/fd` (grpc-js unrefs an
 * idle connection's socket, so Node's list of active handles misses it);
 * undefined where there is no `/proc`.
 */
function openSockets(): number | undefined {
  if (!existsSync('/proc/self/fd')) return undefined;
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed while being listed (the listing's own descriptor among them)
    }
  }
  return n;
}

async function probe(args: readonly string[]): Promise<IdleHeap> {
  const [kind, address, countText, connectText] = args as [IdleKind, string, string, string];
  const count = Number(countText);
  connectMs = Number(connectText);
  if (!KINDS.includes(kind))
    throw new Error(`idle heap probe: kind ${String(kind)} is not one of ${KINDS.join(', ')}`);
  if (!Number.isInteger(count) || count < 1)
    throw new Error(`idle heap probe: count ${countText} is not a positive integer`);
  const connect = kind === 'native' ? connectNative : connectGrpcJs;

  const warm = await Promise.all(Array.from({ length: WARM_UP }, () => connect(address)));
  for (const c of warm) await c.close();
  // let what the closes left for later (timers, socket teardown) run and be collected
  await sleep(200);

  const socketsBefore = openSockets();
  const before = settledHeap();
  const connected = await Promise.all(Array.from({ length: count }, () => connect(address)));
  await sleep(IDLE_MS);
  const after = settledHeap();
  await sleep(100);
  const again = settledHeap();
  const socketsAfter = openSockets();
  // close() also checks that each one is still connected
  for (const c of connected) await c.close();

  const keptBytes = after - before;
  const noiseBytes = Math.abs(again - after);
  if (socketsBefore !== undefined && socketsAfter !== undefined && socketsAfter - socketsBefore < count) {
    throw new Error(
      `idle heap probe (${kind}): ${count} connected, but only ${socketsAfter - socketsBefore} more sockets are open`,
    );
  }
  if (keptBytes <= 0 || keptBytes < NOISE_FACTOR * noiseBytes) {
    throw new Error(
      `idle heap probe (${kind}): ${count} connected, idle ones kept ${keptBytes} bytes of heap, ` +
        `which is not positive and at least ${NOISE_FACTOR}× the ${noiseBytes} bytes the settled heap ` +
        'moved by itself: the measurement is noise, not the heap they keep',
    );
  }
  return { kind, count, bytesPerEndpoint: keptBytes / count, keptBytes, noiseBytes };
}

runProbeMain(SELF, probe);
