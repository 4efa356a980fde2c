/**
 * CPU time: this process's through `process.cpuUsage()` (user + system,
 * microseconds), and another process's (nginx and its workers) from
 * `/proc/<pid>/stat`, fields 14 and 15 (`utime`, `stime`, in clock ticks,
 * see proc(5)). A clock tick is 1/`CLK_TCK` s, usually 10 ms, so a child's
 * CPU is only meaningful over rounds of a second or more.
 *
 * @module
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/**
 * Clock ticks per second (`getconf CLK_TCK`), 100 when it cannot be asked.
 *
 * @example
 * ```ts
 * clockTicks(); // 100
 * ```
 */
export function clockTicks(): number {
  if (ticksPerSecond !== undefined) return ticksPerSecond;
  try {
    const n = Number.parseInt(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim(), 10);
    ticksPerSecond = Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    ticksPerSecond = 100;
  }
  return ticksPerSecond;
}

interface ProcStat {
  readonly ppid: number;
  /** utime + stime, in clock ticks. */
  readonly ticks: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // the command name (field 2) is in parentheses and may hold spaces or ')'
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): field n is rest[n - 3]
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { ppid, ticks: utime + stime };
}

/**
 * The process ids of `pid`'s descendants (children, their children…), found
 * by scanning `/proc`.
 *
 * @example
 * ```ts
 * descendants(nginx.pid); // [ 4242 ]  (the worker)
 * ```
 */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const child = Number(entry);
    if (!Number.isInteger(child)) continue;
    const stat = readStat(child);
    if (stat === undefined) continue;
    const list = parents.get(stat.ppid);
    if (list === undefined) parents.set(stat.ppid, [child]);
    else list.push(child);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift() as number;
    for (const c of parents.get(next) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/**
 * CPU time used so far by the processes `pids`, in microseconds (processes
 * that already exited count 0).
 *
 * @example
 * ```ts
 * const before = processCpuUs([nginx.pid, ...descendants(nginx.pid)]);
 * ```
 */
export function processCpuUs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.ticks ?? 0;
  return (ticks * 1e6) / clockTicks();
}

/**
 * This process's CPU time so far (user + system), in microseconds.
 *
 * @example
 * ```ts
 * const t0 = selfCpuUs();
 * work();
 * const used = selfCpuUs() - t0;
 * ```
 */
export function selfCpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}
