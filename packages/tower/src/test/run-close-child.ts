// Runs close-child.ts and reads its events: the tests of both front ends use it.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestTransport } from '@grpc-tower/testing';

const CHILD = fileURLToPath(new URL('./close-child.ts', import.meta.url));
const PACKAGE_DIR = fileURLToPath(new URL('../..', import.meta.url));

/** One line the child printed. */
export interface ChildEvent {
  readonly event: string;
  readonly ms: number;
  readonly ok?: boolean;
  readonly message?: string;
  readonly details?: string;
  readonly activeCalls?: number;
}

/** How the child ended, what it printed, and its stderr. */
export interface ChildRun {
  readonly exit: { readonly code: number | null; readonly signal: NodeJS.Signals | null };
  readonly events: readonly ChildEvent[];
  readonly stderr: string;
}

/**
 * Runs the child against `address` (towerChannel over a transport, or
 * towerDispatcher for `undici`), its call taking `delayMs` at the
 * server. The default grace is 30 s: a grace timer left behind would keep
 * the child past the 20 s watchdog, which then kills it (the exit shows
 * SIGKILL).
 */
export async function runCloseChild(
  mode: TestTransport | 'undici',
  address: string,
  delayMs: number,
): Promise<ChildRun> {
  const child = spawn(
    process.execPath,
    ['--conditions=@grpc-tower/source', '--import', 'tsx', CHILD, mode, address, String(delayMs)],
    { cwd: PACKAGE_DIR, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const exit = await new Promise<ChildRun['exit']>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  clearTimeout(watchdog);
  const events = stdout
    .trim()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as ChildEvent);
  console.log(`${mode} child events (ms since start):`, events.map((e) => `${e.event} ${e.ms}`).join(', '));
  return { exit, events, stderr };
}
