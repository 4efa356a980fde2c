/**
 * The live terminal view. On a terminal it redraws one compact block every
 * second (ANSI cursor moves): the progress through the phases, then per
 * client and server the calls per second, errors and p50/p99 of the last
 * second, then the latest events. Elsewhere (CI, a pipe) it prints one
 * plain line per second and one line per event.
 */
import { type Recorder, percentile } from './recorder.js';

/** How the view writes: `tty` redraws, `lines` appends, `off` prints nothing. */
export type ViewMode = 'tty' | 'lines' | 'off';

/** Where the story is. */
export interface Progress {
  readonly elapsedMs: number;
  readonly phaseIndex: number;
  readonly phaseCount: number;
  readonly phaseLabel: string;
  readonly phaseElapsedMs: number;
  /** Planned length of the phase, when it has one. */
  readonly phasePlannedMs: number | undefined;
}

const ESC = '\u001b[';
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const ms = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(v < 10 ? 1 : 0));
const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** The live view over the recorders of every client. */
export class LiveView {
  readonly #mode: ViewMode;
  readonly #write: (text: string) => void;
  readonly #recorders: readonly Recorder[];
  readonly #servers: readonly string[];
  readonly #events: string[] = [];
  #lastWindowAt: number;
  #drawnLines = 0;
  readonly #columns: number;

  constructor(
    mode: ViewMode,
    write: (text: string) => void,
    recorders: readonly Recorder[],
    servers: readonly string[],
    now: number,
    columns = 100,
  ) {
    this.#columns = Math.max(40, columns);
    this.#mode = mode;
    this.#write = write;
    this.#recorders = recorders;
    this.#servers = servers;
    this.#lastWindowAt = now;
  }

  /** Reports a story event (a crash, a server appearing…). */
  event(atMs: number, text: string): void {
    const line = `[${lpad(secs(atMs), 7)}] ▸ ${text}`;
    this.#events.push(line);
    if (this.#events.length > 4) this.#events.shift();
    if (this.#mode === 'lines') this.#write(`${line}\n`);
  }

  /** Takes the last window's counts from every recorder and draws them. */
  tick(progress: Progress): void {
    const windowMs = Math.max(1, progress.elapsedMs - this.#lastWindowAt);
    this.#lastWindowAt = progress.elapsedMs;
    const windows = this.#recorders.map((r) => ({ label: r.label, w: r.takeWindow(), total: r.total }));
    if (this.#mode === 'off') return;
    const perSec = (n: number): string => String(Math.round((n * 1000) / windowMs));
    if (this.#mode === 'lines') {
      const parts = windows.map(({ label, w, total }) => {
        const servers = this.#servers
          .map((s) => `${s} ${perSec(w.perServer.get(s)?.calls ?? 0)}/s`)
          .join(' ');
        const all = [...w.perServer.values()].flatMap((c) => c.latencies);
        return `${label}: ${servers}, p99 ${ms(percentile(all, 99))} ms, failed ${total.failed}`;
      });
      this.#write(
        `[${lpad(secs(progress.elapsedMs), 7)}] ${pad(progress.phaseLabel, 16)} ${parts.join(' | ')}\n`,
      );
      return;
    }
    const lines: string[] = [];
    const width = 16;
    const filled =
      progress.phasePlannedMs === undefined
        ? 0
        : Math.min(width, Math.round((progress.phaseElapsedMs / progress.phasePlannedMs) * width));
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const planned =
      progress.phasePlannedMs === undefined
        ? secs(progress.phaseElapsedMs)
        : `${(progress.phaseElapsedMs / 1000).toFixed(1)}/${secs(progress.phasePlannedMs)}`;
    lines.push(
      `${lpad(secs(progress.elapsedMs), 7)}  phase ${progress.phaseIndex + 1}/${progress.phaseCount} ` +
        `${pad(progress.phaseLabel, 20)} ${bar} ${planned}`,
    );
    lines.push(
      `  ${pad('client', 21)}${pad('server', 8)}${lpad('calls/s', 8)}${lpad('errors', 8)}${lpad('p50 ms', 8)}${lpad('p99 ms', 8)}`,
    );
    for (const { label, w, total } of windows) {
      this.#servers.forEach((s, i) => {
        const c = w.perServer.get(s);
        lines.push(
          `  ${pad(i === 0 ? label : '', 21)}${pad(s, 8)}${lpad(perSec(c?.calls ?? 0), 8)}` +
            `${lpad(String(c?.errors ?? 0), 8)}${lpad(ms(percentile(c?.latencies ?? [], 50)), 8)}` +
            `${lpad(ms(percentile(c?.latencies ?? [], 99)), 8)}`,
        );
      });
      lines.push(
        `  ${pad('', 21)}${pad('(other)', 8)}${lpad('', 8)}${lpad(String(w.unattributedErrors), 8)}` +
          `   failed so far: ${total.failed} of ${total.ok + total.failed}`,
      );
    }
    lines.push('');
    for (let i = 0; i < 4; i++) lines.push(this.#events[i] ?? '');
    // a line wider than the terminal would wrap and break the cursor moves
    const fit = lines.map((l) => (l.length < this.#columns ? l : `${l.slice(0, this.#columns - 2)}…`));
    const up = this.#drawnLines > 0 ? `${ESC}${this.#drawnLines}A\r${ESC}J` : '';
    this.#write(`${up}${fit.join('\n')}\n`);
    this.#drawnLines = lines.length;
  }

  /** Leaves the last block on screen; later output goes below it. */
  finish(): void {
    this.#drawnLines = 0;
  }
}
