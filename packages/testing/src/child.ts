/**
 * The echo server in a child process, for tests that need a server to
 * crash (SIGKILL), hang (SIGSTOP) or restart like a real one. The child runs
 * `child-main.ts` under Node with tsx's loader and is controlled over the
 * Node IPC channel; it exits when that channel closes, so it never outlives
 * the test process.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { EchoCallCounts, EchoServerOptions, ServingStatus } from './server.js';

/**
 * Options of {@link spawnEchoServer}: those of `startEchoServer` that can
 * cross a process boundary (the child always serves insecure), plus a
 * start-up timeout.
 *
 * @example
 * ```ts
 * const opts: ChildEchoServerOptions = { host: '127.0.0.9', name: 'crashy', health: true };
 * ```
 */
export interface ChildEchoServerOptions extends Omit<EchoServerOptions, 'credentials'> {
  /** How long the child may take to listen before it is killed and the spawn rejects; default 20000 ms. */
  readonly startTimeoutMs?: number;
}

/**
 * How a child process ended: its exit code, or the signal that ended it.
 *
 * @example
 * ```ts
 * const exit: ChildExit = await child.kill();
 * exit.signal; // 'SIGKILL'
 * ```
 */
export interface ChildExit {
  /** The exit code, or null when a signal ended the process. */
  readonly code: number | null;
  /** The signal that ended the process, or null. */
  readonly signal: NodeJS.Signals | null;
}

/**
 * An echo server running in a child process.
 *
 * @example
 * ```ts
 * const child = await spawnEchoServer({ host: '127.0.0.9' });
 * await child.failNext(1, 14);
 * await child.kill(); // SIGKILL: connections drop like a crashed server's
 * ```
 */
export interface ChildEchoServer {
  /** `host:port` the child listens on. */
  readonly address: string;
  /** The bound host. */
  readonly host: string;
  /** The bound port. */
  readonly port: number;
  /** The name in replies' `server` field. */
  readonly name: string;
  /** The child's process id. */
  readonly pid: number;
  /** Resolves (never rejects) when the child has exited. */
  readonly exited: Promise<ChildExit>;
  /** Sets the server-wide latency; resolves once the child applied it. */
  setLatency(ms: number): Promise<void>;
  /** Makes the next `n` calls fail with `code`; resolves once the child applied it. */
  failNext(n: number, code: number, details?: string): Promise<void>;
  /** Sets a health status (the child must have been started with `health: true`). */
  setServing(status: ServingStatus, service?: string): Promise<void>;
  /** The calls the child's server has started. */
  calls(): Promise<EchoCallCounts>;
  /**
   * Graceful stop: the child lets calls in flight finish for at most
   * `graceMs` (default 5000), then exits. Resolves with how it exited.
   */
  stop(graceMs?: number): Promise<ChildExit>;
  /** Sends `signal` (default SIGKILL: a crash) and resolves once the child exited. */
  kill(signal?: NodeJS.Signals): Promise<ChildExit>;
  /** Freezes the child (SIGSTOP): connections stay open but nothing answers. */
  pause(): void;
  /** Lets a paused child run again (SIGCONT). */
  resume(): void;
}

/**
 * A control request the parent sends the child over IPC (internal to
 * {@link spawnEchoServer} and `child-main.ts`).
 *
 * @example
 * ```ts
 * const request: ChildRequest = { id: 1, op: 'setLatency', ms: 50 };
 * ```
 */
export type ChildRequest =
  | { readonly id: number; readonly op: 'setLatency'; readonly ms: number }
  | {
      readonly id: number;
      readonly op: 'failNext';
      readonly n: number;
      readonly code: number;
      readonly details?: string;
    }
  | {
      readonly id: number;
      readonly op: 'setServing';
      readonly status: ServingStatus;
      readonly service: string;
    }
  | { readonly id: number; readonly op: 'calls' }
  | { readonly id: number; readonly op: 'stop'; readonly graceMs: number };

/**
 * A message the child sends the parent over IPC: `ready` or `error` once,
 * then one `reply` per request.
 *
 * @example
 * ```ts
 * const message: ChildMessage = { type: 'reply', id: 1, ok: true };
 * ```
 */
export type ChildMessage =
  | {
      readonly type: 'ready';
      readonly address: string;
      readonly host: string;
      readonly port: number;
      readonly name: string;
    }
  | { readonly type: 'error'; readonly message: string }
  | { readonly type: 'reply'; readonly id: number; readonly ok: true; readonly result?: EchoCallCounts }
  | { readonly type: 'reply'; readonly id: number; readonly ok: false; readonly message: string };

/**
 * The options the child reads, as JSON, from its first argument.
 *
 * @example
 * ```ts
 * const argv2 = JSON.stringify({ host: '127.0.0.9', latencyMs: 5 } satisfies ChildStartOptions);
 * ```
 */
export type ChildStartOptions = Omit<ChildEchoServerOptions, 'startTimeoutMs'>;

/** Distributive Omit, so each request variant keeps its own fields. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

const CHILD_MAIN = fileURLToPath(new URL('./child-main.ts', import.meta.url));
/** The package folder: the child's working directory, from which `--import tsx` resolves. */
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const STDERR_TAIL_BYTES = 4096;

function describeExit(exit: ChildExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${String(exit.code)}`;
}

/**
 * Starts the echo server in a child process and resolves once it listens.
 * Rejects with an error that names the address and the child's reason
 * (such as the port being taken) when it cannot start.
 *
 * @example
 * ```ts
 * const child = await spawnEchoServer({ host: '127.0.0.9', name: 'b' });
 * child.pause();
 * // calls to child.address now stall
 * child.resume();
 * await child.stop();
 * ```
 */
export async function spawnEchoServer(options: ChildEchoServerOptions = {}): Promise<ChildEchoServer> {
  const { startTimeoutMs = 20_000, ...serverOptions } = options;
  if (!Number.isFinite(startTimeoutMs) || startTimeoutMs <= 0) {
    throw new RangeError(
      `spawnEchoServer: startTimeoutMs must be a number > 0, got ${String(startTimeoutMs)}`,
    );
  }
  const start: ChildStartOptions = serverOptions;
  const target = `${start.host ?? '127.0.0.1'}:${start.port ?? 0}`;
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', CHILD_MAIN, JSON.stringify(start)],
    {
      cwd: PACKAGE_DIR,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    },
  );

  let stderrTail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
  });

  let exitInfo: ChildExit | undefined;
  const exited = new Promise<ChildExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    child.once('error', (err) => {
      // spawn failed: no 'exit' will follow
      if (child.pid === undefined) {
        stderrTail += `\n${err.message}`;
        exitInfo = { code: null, signal: null };
        resolve(exitInfo);
      }
    });
  });

  const pending = new Map<number, { resolve: (m: ChildMessage) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let paused = false;

  const ready = await new Promise<Extract<ChildMessage, { type: 'ready' }>>((resolve, reject) => {
    const tail = (): string => (stderrTail.trim() === '' ? '' : `; stderr: ${stderrTail.trim()}`);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`echo server child for ${target} did not start within ${startTimeoutMs} ms${tail()}`));
    }, startTimeoutMs);
    const onMessage = (message: ChildMessage): void => {
      if (message.type === 'ready') {
        cleanup();
        resolve(message);
      } else if (message.type === 'error') {
        cleanup();
        reject(new Error(`echo server child could not start on ${target}: ${message.message}`));
      }
    };
    const onEarlyExit = (exit: ChildExit): void => {
      cleanup();
      reject(
        new Error(`echo server child for ${target} exited (${describeExit(exit)}) before listening${tail()}`),
      );
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
    };
    child.on('message', onMessage);
    void exited.then(onEarlyExit);
  }).catch(async (err: unknown) => {
    if (exitInfo === undefined) child.kill('SIGKILL');
    await exited;
    throw err;
  });

  child.on('message', (message: ChildMessage) => {
    if (message.type !== 'reply') return;
    const waiter = pending.get(message.id);
    if (waiter === undefined) return;
    pending.delete(message.id);
    if (message.ok) waiter.resolve(message);
    else waiter.reject(new Error(`echo server child ${child.pid}: ${message.message}`));
  });
  void exited.then((exit) => {
    for (const [id, waiter] of pending) {
      pending.delete(id);
      waiter.reject(
        new Error(`echo server child ${child.pid} exited (${describeExit(exit)}) before answering`),
      );
    }
  });

  const request = (body: WithoutId<ChildRequest>): Promise<ChildMessage> => {
    if (exitInfo !== undefined || !child.connected) {
      return Promise.reject(new Error(`echo server child ${child.pid} is not running`));
    }
    const id = nextId++;
    return new Promise<ChildMessage>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      child.send({ ...body, id } as ChildRequest, (err) => {
        if (err !== null) {
          pending.delete(id);
          reject(new Error(`echo server child ${child.pid}: ${err.message}`, { cause: err }));
        }
      });
    });
  };

  const signalChild = (signal: NodeJS.Signals): void => {
    if (exitInfo === undefined) child.kill(signal);
  };
  const pause = (): void => {
    signalChild('SIGSTOP');
    paused = true;
  };
  const resume = (): void => {
    signalChild('SIGCONT');
    paused = false;
  };

  return {
    address: ready.address,
    host: ready.host,
    port: ready.port,
    name: ready.name,
    pid: child.pid ?? -1,
    exited,
    async setLatency(ms: number): Promise<void> {
      await request({ op: 'setLatency', ms });
    },
    async failNext(n: number, code: number, details?: string): Promise<void> {
      await request(
        details === undefined ? { op: 'failNext', n, code } : { op: 'failNext', n, code, details },
      );
    },
    async setServing(status: ServingStatus, service = ''): Promise<void> {
      await request({ op: 'setServing', status, service });
    },
    async calls(): Promise<EchoCallCounts> {
      const reply = await request({ op: 'calls' });
      if (reply.type !== 'reply' || !reply.ok || reply.result === undefined) {
        throw new Error(`echo server child ${child.pid} sent no call counts`);
      }
      return reply.result;
    },
    async stop(graceMs = 5000): Promise<ChildExit> {
      if (exitInfo !== undefined) return exitInfo;
      if (paused) resume();
      // the child answers and exits; if it cannot be reached, or hangs, it is killed
      const backstop = setTimeout(() => signalChild('SIGKILL'), graceMs + 5000);
      try {
        await request({ op: 'stop', graceMs }).catch(() => signalChild('SIGKILL'));
        return await exited;
      } finally {
        clearTimeout(backstop);
      }
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ChildExit> {
      signalChild(signal);
      // a stopped process only acts on SIGKILL; let it run so it receives the signal
      if (paused && signal !== 'SIGKILL') resume();
      return exited;
    },
    pause,
    resume,
  };
}
