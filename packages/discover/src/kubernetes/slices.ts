/**
 * What one Kubernetes EndpointSlice (`discovery.k8s.io/v1`) says about the
 * servers of a Service, read defensively: every endpoint of the slice with
 * its address on the chosen port, its state from the three conditions, its
 * pod, node, zone and topology hints. Anything the slice gets wrong (no
 * ports, no port of that name, a condition that is not a boolean, an
 * address that does not parse, the same address twice) is reported as a
 * problem naming the slice and the endpoint, never thrown.
 *
 * The conditions, as the EndpointSlice API documents them:
 * - `ready`: the endpoint passes its readiness; absent (unknown) counts as
 *   ready;
 * - `serving`: ready regardless of terminating; absent defers to `ready`;
 * - `terminating`: the pod is shutting down; absent counts as false.
 *
 * An endpoint is `'ready'` when ready and not terminating, `'terminating'`
 * when terminating (serving or not: it takes no new calls either way), and
 * `'not-serving'` otherwise.
 *
 * @internal
 * @module
 */
import { formatAddress, tryParseAddress } from '@grpc-tower/core';
import type { DiscoveredAddress } from '../address.js';
import { InvalidRecordError } from '../errors.js';
import type { EndpointState } from '../events.js';

/** @internal One endpoint of a slice, on the chosen port. */
export interface SliceEndpoint {
  /** `host:port`, the key in the set. */
  readonly key: string;
  /** What the source publishes while it is ready. */
  readonly value: DiscoveredAddress;
  readonly state: Exclude<EndpointState, 'gone'>;
  /** Whether the `serving` condition holds (for a terminating endpoint: it still answers). */
  readonly serving: boolean;
  readonly pod: string | undefined;
  readonly zone: string | undefined;
}

/** @internal What {@link readSlice} found in one slice. */
export interface SliceReading {
  readonly endpoints: readonly SliceEndpoint[];
  readonly invalid: readonly InvalidRecordError[];
  /** Addresses listed more than once in this slice, with the inputs that named them. */
  readonly duplicates: readonly { key: string; inputs: string[] }[];
}

type Json = Record<string, unknown>;

const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The slice's `namespace/name`, as events name it. */
export function sliceName(slice: unknown): string {
  const meta = isObject(slice) && isObject(slice.metadata) ? slice.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '?';
  return typeof meta.namespace === 'string' ? `${meta.namespace}/${name}` : name;
}

/** The object's `metadata.resourceVersion`, when it has one. */
export function resourceVersionOf(object: unknown): string | undefined {
  const meta = isObject(object) && isObject(object.metadata) ? object.metadata : undefined;
  const rv = meta?.resourceVersion;
  return typeof rv === 'string' && rv.length > 0 ? rv : undefined;
}

function describePorts(ports: readonly unknown[]): string {
  const names = ports.map((p) =>
    isObject(p) ? `${typeof p.name === 'string' && p.name !== '' ? `${p.name}:` : ''}${String(p.port)}` : '?',
  );
  return names.join(', ');
}

/** The port number the slice gives `port` (a name or a number), or why there is none. */
function portOf(slice: Json, port: string | number): number | string {
  const ports = slice.ports;
  if (!Array.isArray(ports) || ports.length === 0) return 'the slice lists no ports';
  for (const p of ports) {
    if (!isObject(p)) continue;
    const matches = typeof port === 'number' ? p.port === port : p.name === port;
    if (!matches) continue;
    const n = p.port;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) {
      return `its port ${JSON.stringify(p.name ?? '')} has no valid number (${JSON.stringify(n)})`;
    }
    return n;
  }
  const wanted = typeof port === 'number' ? `number ${port}` : `named "${port}"`;
  return `the slice has no port ${wanted} (it has ${describePorts(ports)})`;
}

/** A condition: `true`, `false`, or `undefined` when absent; a string saying what is wrong otherwise. */
function condition(conditions: Json, name: string): boolean | undefined | { bad: string } {
  const v = conditions[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  return { bad: `condition "${name}" is ${JSON.stringify(v)}, not a boolean` };
}

const isBad = (x: boolean | undefined | { bad: string }): x is { bad: string } =>
  typeof x === 'object' && x !== null;

/** The zones of `hints.forZones`, when every entry names one. */
function forZonesOf(endpoint: Json): string[] | undefined | { bad: string } {
  const hints = endpoint.hints;
  if (hints === undefined || hints === null) return undefined;
  if (!isObject(hints)) return { bad: 'hints is not an object' };
  const zones = hints.forZones;
  if (zones === undefined || zones === null) return undefined;
  if (!Array.isArray(zones)) return { bad: 'hints.forZones is not a list' };
  const names: string[] = [];
  for (const z of zones) {
    if (!isObject(z) || typeof z.name !== 'string' || z.name === '') {
      return { bad: `hints.forZones has an entry without a name (${JSON.stringify(z)})` };
    }
    names.push(z.name);
  }
  return names;
}

/** One endpoint of a slice on port `number`, or what is wrong with it. */
function endpointOf(entry: unknown, number: number): SliceEndpoint | string {
  if (!isObject(entry)) return 'not an object';
  const addresses = entry.addresses;
  if (!Array.isArray(addresses) || typeof addresses[0] !== 'string') return 'it has no address';
  // the API lets an endpoint list several addresses; consumers use the first (as kube-proxy does)
  const first: string = addresses[0];
  const parsed = tryParseAddress(`${first.includes(':') ? `[${first}]` : first}:${number}`);
  if (!parsed.ok) return `address ${JSON.stringify(first)}: ${parsed.reason}`;
  const conditions = isObject(entry.conditions) ? entry.conditions : {};
  const ready = condition(conditions, 'ready');
  const serving = condition(conditions, 'serving');
  const terminating = condition(conditions, 'terminating');
  for (const c of [ready, serving, terminating]) if (isBad(c)) return c.bad;
  const isReady = ready !== false;
  const isServing = (serving as boolean | undefined) ?? isReady;
  const forZones = forZonesOf(entry);
  if (isObject(forZones)) return (forZones as { bad: string }).bad;
  const zone = typeof entry.zone === 'string' && entry.zone !== '' ? entry.zone : undefined;
  const ref = isObject(entry.targetRef) ? entry.targetRef : undefined;
  const pod = ref !== undefined && typeof ref.name === 'string' ? ref.name : undefined;
  const node = typeof entry.nodeName === 'string' ? entry.nodeName : undefined;
  const key = formatAddress(parsed.address.host, parsed.address.port);
  const metadata: Record<string, string> = {};
  if (pod !== undefined) metadata.pod = pod;
  if (node !== undefined) metadata.node = node;
  const value: DiscoveredAddress = {
    address: key,
    ...(zone === undefined ? {} : { zone }),
    ...(forZones === undefined ? {} : { forZones }),
    ...(pod === undefined && node === undefined ? {} : { metadata }),
  };
  const state = terminating === true ? 'terminating' : isReady ? 'ready' : 'not-serving';
  return { key, value, state, serving: isServing, pod, zone };
}

/**
 * Reads one slice: its endpoints on `port` (a port name or an endpoint
 * port number), and its problems, named for the source `source`.
 *
 * @example
 * ```ts
 * const { endpoints, invalid } = readSlice('kubernetes:default/orders:grpc', slice, 'grpc');
 * ```
 */
export function readSlice(source: string, slice: unknown, port: string | number): SliceReading {
  const name = sliceName(slice);
  const invalid: InvalidRecordError[] = [];
  const endpoints: SliceEndpoint[] = [];
  const duplicates: { key: string; inputs: string[] }[] = [];
  if (!isObject(slice)) {
    invalid.push(new InvalidRecordError(source, `EndpointSlice ${name}`, 'not an object'));
    return { endpoints, invalid, duplicates };
  }
  const number = portOf(slice, port);
  if (typeof number === 'string') {
    invalid.push(new InvalidRecordError(source, `EndpointSlice ${name}`, number));
    return { endpoints, invalid, duplicates };
  }
  const list = slice.endpoints;
  if (list === undefined || list === null) return { endpoints, invalid, duplicates };
  if (!Array.isArray(list)) {
    invalid.push(new InvalidRecordError(source, `EndpointSlice ${name}`, '"endpoints" is not a list'));
    return { endpoints, invalid, duplicates };
  }
  const seen = new Map<string, string[]>();
  list.forEach((entry: unknown, i: number) => {
    const input = `EndpointSlice ${name} endpoints[${i}]`;
    const ep = endpointOf(entry, number);
    if (typeof ep === 'string') {
      invalid.push(new InvalidRecordError(source, input, ep));
      return;
    }
    const inputs = seen.get(ep.key);
    if (inputs === undefined) {
      seen.set(ep.key, [input]);
      endpoints.push(ep);
      return;
    }
    inputs.push(input);
    if (inputs.length === 2) duplicates.push({ key: ep.key, inputs });
  });
  return { endpoints, invalid, duplicates };
}

const RANK: Record<SliceEndpoint['state'], number> = { ready: 2, terminating: 1, 'not-serving': 0 };

/**
 * Merges the slices of one service: for an address listed by several
 * slices (as happens while the controller moves endpoints between them),
 * the most usable state wins (ready over terminating over not serving),
 * the slices taken in name order for a stable answer.
 *
 * @example
 * ```ts
 * const all = mergeSlices([readSlice(src, a, 'grpc'), readSlice(src, b, 'grpc')]);
 * ```
 */
export function mergeSlices(readings: Iterable<SliceReading>): Map<string, SliceEndpoint> {
  const merged = new Map<string, SliceEndpoint>();
  for (const reading of readings) {
    for (const ep of reading.endpoints) {
      const had = merged.get(ep.key);
      if (had === undefined || RANK[ep.state] > RANK[had.state]) merged.set(ep.key, ep);
    }
  }
  return merged;
}
