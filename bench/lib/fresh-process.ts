/**
 * Heap measurements in a fresh Node process, so that the garbage and the
 * heap growth or shrinkage of the long-running bench process never count.
 * A probe is a module that calls {@link runProbeMain} with its own path:
 * run as a child by {@link runProbe}, it measures and prints one JSON line,
 * which the parent reads back.
 *
 * The child runs with `--expose-gc` (so it can collect fully before each
 * reading), without JIT and without bytecode flushing
 * (`--jitless --no-flush-bytecode`): compiled code appearing, or bytecode
 * being dropped, during a step would otherwise count as that step's heap
 * (object sizes are the same either way).
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The V8 flags a heap probe runs with. */
const PROBE_FLAGS = ['--expose-gc', '--jitless', '--no-flush-bytecode'] as const;

/**
 * Runs the probe module `file` in a fresh child process with `args` and
 * returns the JSON value it printed. Rejects naming `what` when the child
 * exits with an error (its stderr's end is in the message) or prints no JSON.
 *
 * @example
 * ```ts
 * const result = await runProbe<{ sizes: object }>(fileURLToPath(import.meta.url), ['10'], 'heap probe');
 * ```
 */
export function runProbe<T>(file: string, args: readonly string[], what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...PROBE_FLAGS, '--conditions=@grpc-tower/source', '--import', 'tsx', file, ...args],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      err = (err + c).slice(-4096);
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${what} exited with ${code ?? signal}: ${err.trim()}`));
        return;
      }
      try {
        resolve(JSON.parse(out.trim()) as T);
      } catch (e) {
        reject(new Error(`${what} printed no result: ${out.slice(0, 200)} ${err.trim()}`, { cause: e }));
      }
    });
  });
}

/**
 * The used heap after full garbage collections, in bytes. Only in a probe
 * process (it needs `--expose-gc`).
 *
 * @example
 * ```ts
 * const before = settledHeap();
 * ```
 */
export function settledHeap(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('a heap probe must run with --expose-gc (through runProbe)');
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * When the module at `self` is the process's entry point (run by
 * {@link runProbe}), runs `main` with the command-line arguments, prints
 * its result as one JSON line and exits 0, or prints the error and exits 1.
 *
 * @example
 * ```ts
 * runProbeMain(fileURLToPath(import.meta.url), async (args) => ({ bytes: settledHeap() }));
 * ```
 */
export function runProbeMain(self: string, main: (args: readonly string[]) => Promise<unknown>): void {
  if (process.argv[1] !== self) return;
  main(process.argv.slice(2)).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
