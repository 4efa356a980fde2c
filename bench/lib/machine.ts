/**
 * The machine and the software versions a run used, recorded in every
 * result file so that numbers are never read without their context.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import type { MachineInfo } from './schema.js';

const require = createRequire(import.meta.url);

/** The first line a command prints (on stdout or stderr), or null when it cannot run. */
function versionLine(bin: string, args: readonly string[], match: RegExp): string | null {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 5_000 });
  if (r.error !== undefined || r.status === null) return null;
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
  return text.match(match)?.[1] ?? null;
}

function osName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    return text.match(/^PRETTY_NAME="?([^"\n]*)"?/m)?.[1] ?? os.type();
  } catch {
    return os.type();
  }
}

/** The nginx binary: `/usr/sbin/nginx`, else `nginx` on PATH. */
export function nginxBinary(): string {
  return existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
}

/** The dnsmasq binary: `/usr/sbin/dnsmasq`, else `dnsmasq` on PATH. */
export function dnsmasqBinary(): string {
  return existsSync('/usr/sbin/dnsmasq') ? '/usr/sbin/dnsmasq' : 'dnsmasq';
}

/**
 * Describes this machine: cores, CPU, memory, OS, Node and grpc-js
 * versions, nginx and dnsmasq versions (null when missing), load average.
 *
 * @example
 * ```ts
 * const m = machineInfo();
 * console.log(`${m.cores} cores, node ${m.node}`);
 * ```
 */
export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  const grpcJs = (require('@grpc/grpc-js/package.json') as { version: string }).version;
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryMiB: Math.round(os.totalmem() / 2 ** 20),
    os: osName(),
    kernel: os.release(),
    arch: process.arch,
    node: process.version,
    v8: process.versions.v8,
    grpcJs,
    nginx: versionLine(nginxBinary(), ['-v'], /nginx version: nginx\/(\S+)/),
    dnsmasq: versionLine(dnsmasqBinary(), ['--version'], /Dnsmasq version (\S+)/),
    loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

/**
 * The 1, 5 and 15 minute load averages, rounded to 2 decimals.
 *
 * @example
 * ```ts
 * loadAverage(); // [0.52, 0.4, 0.31]
 * ```
 */
export function loadAverage(): number[] {
  return os.loadavg().map((l) => Number(l.toFixed(2)));
}
