/**
 * Stopping a server process the tests started (dnsmasq, etcd).
 *
 * @module
 */
import type { ChildProcess } from 'node:child_process';

/**
 * Sends `child` SIGTERM and resolves once it has exited, sending SIGKILL if
 * it is still running after `graceMs`; the timer is cleared when it exits.
 * A child that has already exited resolves at once.
 *
 * @example
 * ```ts
 * await stopChild(dnsmasqProcess, 2000);
 * ```
 */
export function stopChild(child: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
