/**
 * A stand-in Kubernetes API server for tests. It is NOT kube-apiserver: no
 * API server can run on this machine, so this one is written from the
 * Kubernetes API's documented behaviour
 * (https://kubernetes.io/docs/reference/using-api/api-concepts/: list and
 * watch, resourceVersion semantics, bookmarks, 410 Gone; and the
 * `discovery.k8s.io/v1` EndpointSlice reference), and checked against two
 * real clients, `@kubernetes/client-node` and `kubectl`
 * (`kube-api.test.ts`).
 *
 * What it implements:
 * - HTTPS (`node:https`, HTTP/1.1; watches are chunked JSON lines, as
 *   kube-apiserver serves them) on loopback with a throwaway CA and server
 *   certificate made by the `openssl` CLI, and a random bearer token; a
 *   request without `Authorization: Bearer <token>` gets 401.
 * - EndpointSlices (`/apis/discovery.k8s.io/v1/[namespaces/{ns}/]endpointslices[/{name}]`)
 *   and Nodes (`/api/v1/nodes[/{name}]`): get, list and watch, with
 *   `labelSelector` (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`,
 *   `a notin (x,y)`) and `fieldSelector` (`metadata.name`,
 *   `metadata.namespace`). One resourceVersion counter serves every object,
 *   like etcd's revision.
 * - list `resourceVersion`: unset or `"0"` → the current state; `N` with
 *   `resourceVersionMatch` unset or `NotOlderThan` → the current state (it is
 *   not older than N), or 504 when N is in the future; `N` with
 *   `resourceVersionMatch=Exact` (or with `limit` and no match, the legacy
 *   rule) → the state at N, 410 Expired when N is older than the compaction
 *   point. Like the API, a list with a too-old RV and "not older than"
 *   semantics does not fail: only Exact lists and watches get 410.
 * - watch: `resourceVersion` unset or `"0"` → synthetic ADDED events for the
 *   current objects, then live events; `N` → every change after N from the
 *   history, then live; `N` older than the compaction point → one ERROR
 *   event (a Status, code 410, reason Expired) and the end of the response,
 *   as kube-apiserver's watch cache does. A MODIFIED object that stops
 *   matching the selectors is sent as DELETED (its previous content with the
 *   event's RV), one that starts matching as ADDED. `allowWatchBookmarks`,
 *   `timeoutSeconds`, and `sendInitialEvents=true` (the watch-list protocol:
 *   ADDED events, then a BOOKMARK annotated `k8s.io/initial-events-end`).
 * - the discovery documents clients read before a request: `/version`,
 *   `/api`, `/apis`, `/api/v1`, `/apis/discovery.k8s.io[/v1]`, in the legacy
 *   (unaggregated) form with `Content-Type: application/json`, which makes
 *   client-go (kubectl) fall back from aggregated discovery; `/healthz`,
 *   `/livez`, `/readyz`.
 * - failures a test provokes: {@link KubeApiServer.compact} (410 for older
 *   RVs), {@link KubeApiServer.dropWatches} (sockets destroyed),
 *   {@link KubeApiServer.endWatches} (clean end, as the watch timeout),
 *   {@link KubeApiServer.pause} (503 for new requests).
 *
 * What it does not do: writes through the API (POST/PUT/PATCH/DELETE get
 * 405; objects change only through {@link KubeApiServer.apply} and friends),
 * validation or defaulting of objects (they are stored verbatim, so a test
 * can serve a broken slice), `generation`, finalizers, paging (`limit` is
 * accepted and ignored: every list is one page with no `continue`),
 * protobuf or Table output (always JSON), aggregated discovery, OpenAPI
 * documents (404), RBAC, other resources, the deprecated `/watch/` paths,
 * the server's own watch timeout (a watch stays open until
 * `timeoutSeconds`, `endWatches`, `dropWatches` or `close`), and no-op
 * detection (`apply` of an unchanged object still bumps the RV and sends
 * MODIFIED, where kube-apiserver would skip the write). A bookmark's object
 * carries only `kind`, `apiVersion` and `metadata.resourceVersion` (the
 * real one may also carry the type's empty fields). List items carry no
 * `kind`/`apiVersion`, as in kube-apiserver's JSON lists; a get or a watch
 * event always carries them.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * One endpoint of an EndpointSlice, as JSON (`discovery.k8s.io/v1`).
 *
 * @example
 * ```ts
 * const e: EndpointSliceEndpoint = { addresses: ['10.0.0.1'], conditions: { ready: true } };
 * ```
 */
export interface EndpointSliceEndpoint {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean; [key: string]: unknown };
  hostname?: string;
  nodeName?: string;
  zone?: string;
  targetRef?: { kind: string; name: string; namespace?: string; uid?: string; [key: string]: unknown };
  hints?: { forZones?: { name: string }[]; [key: string]: unknown };
  [key: string]: unknown;
}

/**
 * The plain JSON of a `discovery.k8s.io/v1` EndpointSlice, as a test gives
 * it to {@link KubeApiServer.apply}. Only `metadata.namespace` and
 * `metadata.name` (or `generateName`) are required, so a test can serve a
 * slice the real API would reject.
 *
 * @example
 * ```ts
 * const s: EndpointSliceInput = {
 *   metadata: { name: 'orders-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'orders' } },
 *   addressType: 'IPv4',
 *   endpoints: [{ addresses: ['10.0.0.1', '10.0.0.1'] }], // no ports, a duplicate address
 * };
 * ```
 */
export interface EndpointSliceInput {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    namespace?: string;
    generateName?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  addressType?: string;
  endpoints?: EndpointSliceEndpoint[] | null;
  ports?: { name?: string; port?: number; protocol?: string; [key: string]: unknown }[] | null;
  [key: string]: unknown;
}

/**
 * One request the stand-in received.
 *
 * @example
 * ```ts
 * const watch = server.requests.findLast((r: KubeApiRequest) => r.query.watch === 'true');
 * expect(watch?.query.resourceVersion).toBe('12');
 * ```
 */
export interface KubeApiRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The `Accept` header, when there was one. */
  readonly accept: string | undefined;
  /** The response's status code (200 for a watch, even one that ends with an ERROR event). */
  readonly status: number;
}

/**
 * A running stand-in Kubernetes API server. Always `close()` it.
 *
 * @example
 * ```ts
 * const server = await startKubeApi();
 * const kc = new KubeConfig();
 * kc.loadFromString(server.kubeconfig);
 * server.apply(endpointSlice({ name: 'orders-1', service: 'orders', endpoints: [{ addresses: ['10.0.0.1'] }] }));
 * server.compact();      // a watch from an older RV now gets ERROR 410
 * server.dropWatches();  // every watch connection is cut
 * await server.close();
 * ```
 */
export interface KubeApiServer {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  /** The bearer token every request must carry. */
  readonly token: string;
  /** The PEM of the CA that signed the server's certificate. */
  readonly caPem: string;
  /** A kubeconfig (YAML): one cluster, one user (the token), one context (namespace `default`), current. */
  readonly kubeconfig: string;
  /** The same kubeconfig in a temporary file (deleted by `close`). */
  readonly kubeconfigPath: string;
  /** The current resourceVersion: a decimal string, one counter for all objects (as etcd's revision). */
  readonly resourceVersion: string;
  /**
   * Creates or replaces an EndpointSlice (`metadata.namespace`/`name`
   * identify it; a missing name with `generateName` gets a random suffix).
   * Stored verbatim apart from `metadata.resourceVersion`, `uid` and
   * `creationTimestamp`; bumps the RV; sends ADDED or MODIFIED to the
   * watches it matches. Returns the new RV.
   */
  apply(slice: EndpointSliceInput): string;
  /** Deletes an EndpointSlice (throws when absent); sends DELETED with its last content and the new RV. Returns the new RV. */
  remove(namespace: string, name: string): string;
  /** Creates or replaces a Node (for a client's own zone: `labels['topology.kubernetes.io/zone']`); bumps the RV. */
  applyNode(name: string, labels: Record<string, string>): void;
  /** Forgets history older than the current RV: a watch (or an Exact list) from an older RV then gets 410, as after etcd compaction. */
  compact(): void;
  /** Destroys every open watch connection (no final event, no clean end), as a dropped connection or an apiserver restart. */
  dropWatches(): void;
  /** Ends every open watch cleanly, as the apiserver's watch timeout does. */
  endWatches(): void;
  /** Sends a BOOKMARK with the current RV to every watch that asked `allowWatchBookmarks=true`. */
  bookmark(): void;
  /** New requests get 503 until {@link KubeApiServer.resume}; open watches stay. */
  pause(): void;
  /** Answers again after {@link KubeApiServer.pause}. */
  resume(): void;
  /** Every request seen, oldest first. */
  readonly requests: readonly KubeApiRequest[];
  /** How many watch connections are open. */
  readonly watches: number;
  /** Closes every socket and removes the temporary files; leaves no timer or handle alive. */
  close(): Promise<void>;
}

/**
 * Options of {@link startKubeApi}.
 *
 * @example
 * ```ts
 * const opts: KubeApiOptions = { host: '::1' };
 * ```
 */
export interface KubeApiOptions {
  /** The loopback address (or name) to listen on; default `127.0.0.1`. It is in the certificate's SAN. */
  readonly host?: string;
  /** The port; default 0 (a free one). */
  readonly port?: number;
}

type Json = Record<string, unknown>;
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** The two resources served. */
interface Resource {
  readonly name: 'endpointslices' | 'nodes';
  readonly singular: string;
  readonly group: string;
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

const SLICES: Resource = {
  name: 'endpointslices',
  singular: 'endpointslice',
  group: 'discovery.k8s.io',
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  namespaced: true,
};
const NODES: Resource = {
  name: 'nodes',
  singular: 'node',
  group: '',
  apiVersion: 'v1',
  kind: 'Node',
  namespaced: false,
};

/** One write, kept for watches and Exact lists from an older RV. */
interface Change {
  readonly rv: number;
  readonly resource: Resource;
  readonly type: EventType;
  /** The object after the write (for DELETED: the last content with the deletion's RV). */
  readonly object: Json;
  /** The object before the write (absent for ADDED). */
  readonly prev: Json | undefined;
}

interface Watch {
  readonly res: ServerResponse;
  readonly resource: Resource;
  readonly namespace: string | undefined;
  readonly matches: (o: Json) => boolean;
  readonly bookmarks: boolean;
  timer: NodeJS.Timeout | undefined;
}

interface Pem {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

class BadRequest extends Error {}

const meta = (o: Json): Json => o.metadata as Json;
const keyOf = (r: Resource, namespace: string | undefined, name: string): string =>
  `${r.name}/${namespace ?? ''}/${name}`;
const objectKey = (r: Resource, o: Json): string =>
  keyOf(r, meta(o).namespace as string | undefined, meta(o).name as string);

function status(code: number, reason: string, message: string, details?: Json): Json {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  };
}

function notFound(r: Resource, name: string): Json {
  const what = r.group === '' ? r.name : `${r.name}.${r.group}`;
  return status(404, 'NotFound', `${what} "${name}" not found`, {
    name,
    ...(r.group === '' ? {} : { group: r.group }),
    kind: r.name,
  });
}

// ---- selectors ----------------------------------------------------------

const LABEL_KEY = /^(?:[A-Za-z0-9][-A-Za-z0-9_.]*\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Splits `a=b,c in (x,y)` at the commas outside parentheses. */
function terms(selector: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  out.push(selector.slice(start));
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

/** A label selector (equality- and set-based terms, ANDed), or BadRequest. */
function labelMatcher(selector: string): (labels: Record<string, string>) => boolean {
  const get = (l: Record<string, string>, key: string): string | undefined =>
    Object.hasOwn(l, key) ? l[key] : undefined;
  const tests = terms(selector).map((term): ((l: Record<string, string>) => boolean) => {
    const set = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(term);
    if (set !== null) {
      const [, key = '', op, list = ''] = set;
      const values = new Set(list.split(',').map((v) => v.trim()));
      if (!LABEL_KEY.test(key) || [...values].some((v) => !LABEL_VALUE.test(v)))
        throw new BadRequest(`unable to parse requirement: ${term}`);
      return op === 'in' ? (l) => values.has(get(l, key) ?? '\0') : (l) => !values.has(get(l, key) ?? '\0');
    }
    const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (eq !== null) {
      const [, key = '', op, value = ''] = eq;
      if (!LABEL_KEY.test(key) || !LABEL_VALUE.test(value))
        throw new BadRequest(`unable to parse requirement: ${term}`);
      return op === '!=' ? (l) => get(l, key) !== value : (l) => get(l, key) === value;
    }
    const not = /^!\s*(\S+)$/.exec(term);
    if (not !== null && LABEL_KEY.test(not[1] ?? '')) return (l) => get(l, not[1] ?? '') === undefined;
    if (LABEL_KEY.test(term)) return (l) => get(l, term) !== undefined;
    throw new BadRequest(`unable to parse requirement: ${term}`);
  });
  return (labels) => tests.every((t) => t(labels));
}

/** A field selector on `metadata.name` and `metadata.namespace`, or BadRequest. */
function fieldMatcher(selector: string): (o: Json) => boolean {
  const tests = terms(selector).map((term): ((o: Json) => boolean) => {
    const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (eq === null) throw new BadRequest(`invalid field selector: ${term}`);
    const [, field, op, value] = eq;
    if (field !== 'metadata.name' && field !== 'metadata.namespace')
      throw new BadRequest(`field label not supported: ${field}`);
    const prop = field === 'metadata.name' ? 'name' : 'namespace';
    return op === '!=' ? (o) => (meta(o)[prop] ?? '') !== value : (o) => (meta(o)[prop] ?? '') === value;
  });
  return (o) => tests.every((t) => t(o));
}

function matcher(query: Record<string, string>): (o: Json) => boolean {
  const labels = labelMatcher(query.labelSelector ?? '');
  const fields = fieldMatcher(query.fieldSelector ?? '');
  return (o) => labels((meta(o).labels as Record<string, string> | undefined) ?? {}) && fields(o);
}

/** A resourceVersion parameter: undefined for unset, "" and "0"; a number otherwise, or BadRequest. */
function parseRv(rv: string | undefined): number | undefined {
  if (rv === undefined || rv === '' || rv === '0') return undefined;
  if (!/^[0-9]+$/.test(rv)) throw new BadRequest(`invalid resourceVersion: ${rv}`);
  return Number(rv);
}

// ---- TLS ----------------------------------------------------------------

const run = (cwd: string, args: string[]): Promise<void> =>
  new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 20_000 }, (error, _stdout, stderr) =>
      error === null ? resolve() : reject(new Error(`openssl ${args[0]}: ${stderr || error.message}`)),
    );
  });

const pems = new Map<string, Promise<Pem>>();

/** A CA and a server certificate for `host` (and 127.0.0.1, localhost), made once per host per process. */
function certificates(host: string): Promise<Pem> {
  let pem = pems.get(host);
  if (pem === undefined) {
    pem = makeCertificates(host);
    pems.set(host, pem);
    pem.catch(() => pems.delete(host));
  }
  return pem;
}

async function makeCertificates(host: string): Promise<Pem> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-api-tls-'));
  try {
    const words = (line: string): string[] => line.split(' ');
    const ec = words('-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes');
    await run(dir, [
      ...words('req -x509'),
      ...ec,
      ...words('-keyout ca.key -out ca.crt -days 2 -subj'),
      '/CN=grpc-tower kube-api stand-in CA',
      ...words('-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign'),
    ]);
    await run(dir, [
      ...words('req -new'),
      ...ec,
      ...words('-keyout server.key -out server.csr -subj /CN=kube-apiserver'),
    ]);
    const sans = new Set(['IP:127.0.0.1', 'DNS:localhost', `${isIP(host) === 0 ? 'DNS' : 'IP'}:${host}`]);
    await writeFile(
      join(dir, 'ext.cnf'),
      `subjectAltName=${[...sans].join(',')}\nbasicConstraints=critical,CA:FALSE\n` +
        'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
    );
    const serial = `0x${randomBytes(8).toString('hex')}`;
    await run(dir, [
      ...words('x509 -req -in server.csr -CA ca.crt -CAkey ca.key -days 2 -extfile ext.cnf -out server.crt'),
      ...['-set_serial', serial],
    ]);
    const [ca, cert, key] = await Promise.all(
      ['ca.crt', 'server.crt', 'server.key'].map((f) => readFile(join(dir, f), 'utf8')),
    );
    return { ca: ca ?? '', cert: cert ?? '', key: key ?? '' };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function kubeconfigYaml(url: string, caPem: string, token: string): string {
  const q = JSON.stringify; // a JSON string is a YAML double-quoted scalar
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: stand-in',
    '  cluster:',
    `    server: ${q(url)}`,
    `    certificate-authority-data: ${q(Buffer.from(caPem).toString('base64'))}`,
    'users:',
    '- name: stand-in',
    '  user:',
    `    token: ${q(token)}`,
    'contexts:',
    '- name: stand-in',
    '  context:',
    '    cluster: stand-in',
    '    user: stand-in',
    '    namespace: default',
    'current-context: stand-in',
    'preferences: {}',
    '',
  ].join('\n');
}

// ---- the server ---------------------------------------------------------

const VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-grpc-tower-stand-in',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

class StandIn implements KubeApiServer {
  readonly url: string;
  readonly token = randomBytes(24).toString('base64url');
  readonly caPem: string;
  readonly kubeconfig: string;
  readonly kubeconfigPath: string;
  readonly requests: KubeApiRequest[] = [];
  readonly #server: ReturnType<typeof createServer>;
  readonly #dir: string;
  readonly #hostPort: string;
  #rv = 1;
  /** The oldest RV a watch or an Exact list may start from. */
  #compacted = 1;
  /** The objects as they were at {@link #compacted}. */
  #base = new Map<string, Json>();
  #history: Change[] = [];
  readonly #objects = new Map<string, Json>();
  readonly #watches = new Set<Watch>();
  #paused = false;
  #closed: Promise<void> | undefined;

  constructor(
    server: ReturnType<typeof createServer>,
    url: string,
    hostPort: string,
    dir: string,
    ca: string,
  ) {
    this.#server = server;
    this.url = url;
    this.#hostPort = hostPort;
    this.#dir = dir;
    this.caPem = ca;
    this.kubeconfig = kubeconfigYaml(url, ca, this.token);
    this.kubeconfigPath = join(dir, 'kubeconfig.yaml');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res));
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  get watches(): number {
    return this.#watches.size;
  }

  apply(slice: EndpointSliceInput): string {
    const object = structuredClone(slice) as Json;
    const m = object.metadata as Json | undefined;
    if (typeof m !== 'object' || m === null || typeof m.namespace !== 'string' || m.namespace === '')
      throw new TypeError('apply: the slice needs metadata.namespace');
    if (typeof m.name !== 'string' || m.name === '') {
      if (typeof m.generateName !== 'string' || m.generateName === '')
        throw new TypeError('apply: the slice needs metadata.name or metadata.generateName');
      m.name = `${m.generateName}${randomBytes(3).toString('hex').slice(0, 5)}`;
    }
    return this.#write(SLICES, object);
  }

  remove(namespace: string, name: string): string {
    const key = keyOf(SLICES, namespace, name);
    const prev = this.#objects.get(key);
    if (prev === undefined) throw new Error(`remove: no EndpointSlice ${namespace}/${name}`);
    this.#objects.delete(key);
    const rv = ++this.#rv;
    const object = structuredClone(prev);
    meta(object).resourceVersion = String(rv);
    this.#record({ rv, resource: SLICES, type: 'DELETED', object, prev });
    return String(rv);
  }

  applyNode(name: string, labels: Record<string, string>): void {
    this.#write(NODES, { metadata: { name, labels: { ...labels } }, spec: {}, status: {} });
  }

  compact(): void {
    this.#compacted = this.#rv;
    this.#base = new Map(this.#objects);
    this.#history = [];
  }

  dropWatches(): void {
    for (const w of [...this.#watches]) {
      this.#forget(w);
      w.res.socket?.destroy();
      w.res.destroy();
    }
  }

  endWatches(): void {
    for (const w of [...this.#watches]) {
      this.#forget(w);
      w.res.end();
    }
  }

  bookmark(): void {
    for (const w of this.#watches) if (w.bookmarks) this.#bookmark(w, undefined);
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.dropWatches();
      await new Promise<void>((resolve) => {
        this.#server.close(() => resolve());
        this.#server.closeAllConnections();
      });
      await rm(this.#dir, { recursive: true, force: true });
    })();
    return this.#closed;
  }

  /** Creates or replaces `object` (with metadata.name, and namespace when namespaced). */
  #write(resource: Resource, object: Json): string {
    const key = objectKey(resource, object);
    const prev = this.#objects.get(key);
    const rv = ++this.#rv;
    const m = meta(object);
    m.resourceVersion = String(rv);
    m.uid = prev === undefined ? randomUUID() : meta(prev).uid;
    m.creationTimestamp =
      prev === undefined ? new Date().toISOString().replace(/\.\d+Z$/, 'Z') : meta(prev).creationTimestamp;
    this.#objects.set(key, object);
    this.#record({ rv, resource, type: prev === undefined ? 'ADDED' : 'MODIFIED', object, prev });
    return String(rv);
  }

  #record(change: Change): void {
    this.#history.push(change);
    for (const w of this.#watches) this.#send(w, change);
  }

  /** Sends `change` to `w` as the watch cache would: filtered on both the new and the previous object. */
  #send(w: Watch, change: Change): void {
    if (change.resource !== w.resource) return;
    const ns = meta(change.object).namespace;
    if (w.namespace !== undefined && ns !== w.namespace) return;
    const now = change.type !== 'DELETED' && w.matches(change.object);
    const before = change.prev !== undefined && w.matches(change.prev);
    if (now) this.#event(w, before ? 'MODIFIED' : 'ADDED', change.object);
    else if (before && change.prev !== undefined) {
      const gone = structuredClone(change.prev);
      meta(gone).resourceVersion = String(change.rv);
      this.#event(w, 'DELETED', gone);
    }
  }

  #event(w: Watch, type: EventType, object: Json): void {
    w.res.write(`${JSON.stringify({ type, object: this.#typed(w.resource, object) })}\n`);
  }

  #bookmark(w: Watch, annotations: Json | undefined): void {
    const metadata: Json = { resourceVersion: String(this.#rv) };
    if (annotations !== undefined) metadata.annotations = annotations;
    w.res.write(
      `${JSON.stringify({ type: 'BOOKMARK', object: { kind: w.resource.kind, apiVersion: w.resource.apiVersion, metadata } })}\n`,
    );
  }

  #forget(w: Watch): void {
    this.#watches.delete(w);
    if (w.timer !== undefined) clearTimeout(w.timer);
    w.timer = undefined;
  }

  /** The object as a get or a watch event serves it: kind and apiVersion first. */
  #typed(r: Resource, object: Json): Json {
    const { kind: _kind, apiVersion: _apiVersion, ...rest } = object;
    return { kind: r.kind, apiVersion: r.apiVersion, ...rest };
  }

  /** The objects of `resource` (in `namespace`) at `rv`, sorted by namespace and name as etcd keys are. */
  #stateAt(resource: Resource, namespace: string | undefined, rv: number): Json[] {
    let objects = this.#objects;
    if (rv !== this.#rv) {
      objects = new Map(this.#base);
      for (const c of this.#history) {
        if (c.rv > rv) break;
        if (c.type === 'DELETED') objects.delete(objectKey(c.resource, c.object));
        else objects.set(objectKey(c.resource, c.object), c.object);
      }
    }
    const prefix = `${resource.name}/${namespace === undefined ? '' : `${namespace}/`}`;
    return [...objects.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://stand-in');
    const query: Record<string, string> = Object.fromEntries(url.searchParams);
    const seen = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      accept: req.headers.accept,
      status: 0,
    };
    this.requests.push(seen);
    const send = (code: number, body: Json | string): void => {
      seen.status = code;
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(code, {
        'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
        'Cache-Control': 'no-cache, private',
        'Content-Length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    if (this.#paused) {
      send(503, status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request'));
      return;
    }
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      send(401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    try {
      this.#route(req.method ?? 'GET', url.pathname, query, res, send, seen);
    } catch (error) {
      if (!(error instanceof BadRequest)) throw error;
      send(400, status(400, 'BadRequest', error.message));
    }
  }

  #route(
    method: string,
    path: string,
    query: Record<string, string>,
    res: ServerResponse,
    send: (code: number, body: Json | string) => void,
    seen: { status: number },
  ): void {
    const discovery = this.#discovery(path);
    if (discovery !== undefined) {
      if (method !== 'GET') send(405, status(405, 'MethodNotAllowed', `${method} is not allowed on ${path}`));
      else send(200, discovery);
      return;
    }
    const slices =
      /^\/apis\/discovery\.k8s\.io\/v1\/(?:namespaces\/([^/]+)\/)?endpointslices(?:\/([^/]+))?$/.exec(path);
    const nodes = /^\/api\/v1\/nodes(?:\/([^/]+))?$/.exec(path);
    if (slices === null && nodes === null) {
      send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    const resource = slices !== null ? SLICES : NODES;
    const namespace = slices !== null ? slices[1] : undefined;
    const name = slices !== null ? slices[2] : nodes?.[1];
    if (method !== 'GET') {
      send(405, status(405, 'MethodNotAllowed', 'the stand-in serves only get, list and watch'));
      return;
    }
    if (name !== undefined) {
      if (slices !== null && namespace === undefined) {
        send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
        return;
      }
      const object = this.#objects.get(keyOf(resource, namespace, decodeURIComponent(name)));
      if (object === undefined) send(404, notFound(resource, decodeURIComponent(name)));
      else send(200, this.#typed(resource, object));
      return;
    }
    const matches = matcher(query);
    if (query.watch === 'true' || query.watch === '1') {
      seen.status = 200;
      this.#watch(res, resource, namespace, matches, query);
      return;
    }
    const rv = parseRv(query.resourceVersion);
    const match = query.resourceVersionMatch ?? '';
    if (match !== '' && match !== 'Exact' && match !== 'NotOlderThan')
      throw new BadRequest(`unsupported resourceVersionMatch: ${match}`);
    if (rv !== undefined && rv > this.#rv) {
      send(
        504,
        status(504, 'Timeout', `Too large resource version: ${rv}, current: ${this.#rv}`, {
          causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
          retryAfterSeconds: 1,
        }),
      );
      return;
    }
    const exact = rv !== undefined && (match === 'Exact' || (match === '' && query.limit !== undefined));
    if (exact && rv < this.#compacted) {
      send(410, status(410, 'Expired', 'The resourceVersion for the provided list is too old.'));
      return;
    }
    const at = exact ? rv : this.#rv;
    send(200, {
      kind: `${resource.kind}List`,
      apiVersion: resource.apiVersion,
      metadata: { resourceVersion: String(at) },
      items: this.#stateAt(resource, namespace, at)
        .filter(matches)
        .map(({ kind: _kind, apiVersion: _apiVersion, ...rest }) => rest),
    });
  }

  #watch(
    res: ServerResponse,
    resource: Resource,
    namespace: string | undefined,
    matches: (o: Json) => boolean,
    query: Record<string, string>,
  ): void {
    const rv = parseRv(query.resourceVersion);
    const initial = query.sendInitialEvents === 'true';
    if (initial && query.resourceVersionMatch !== 'NotOlderThan')
      throw new BadRequest('sendInitialEvents requires resourceVersionMatch=NotOlderThan');
    const timeout = query.timeoutSeconds === undefined ? undefined : Number(query.timeoutSeconds);
    if (timeout !== undefined && !(Number.isInteger(timeout) && timeout >= 0))
      throw new BadRequest(`invalid timeoutSeconds: ${query.timeoutSeconds}`);
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    res.flushHeaders();
    const bookmarks = query.allowWatchBookmarks === 'true' || query.allowWatchBookmarks === '1';
    const w: Watch = { res, resource, namespace, matches, bookmarks, timer: undefined };
    if (!initial && rv !== undefined && rv < this.#compacted) {
      const message = `too old resource version: ${rv} (${this.#compacted})`;
      res.write(`${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', message) })}\n`);
      res.end();
      return;
    }
    if (initial || rv === undefined) {
      for (const o of this.#stateAt(resource, namespace, this.#rv))
        if (matches(o)) this.#event(w, 'ADDED', o);
      if (initial && bookmarks) this.#bookmark(w, { 'k8s.io/initial-events-end': 'true' });
    } else {
      for (const c of this.#history) if (c.rv > rv) this.#send(w, c);
    }
    this.#watches.add(w);
    res.on('close', () => this.#forget(w));
    if (timeout !== undefined && timeout > 0) {
      w.timer = setTimeout(() => {
        this.#forget(w);
        res.end();
      }, timeout * 1000);
      w.timer.unref();
    }
  }

  /** The discovery documents, by path. */
  #discovery(path: string): Json | string | undefined {
    const group = {
      name: 'discovery.k8s.io',
      versions: [{ groupVersion: 'discovery.k8s.io/v1', version: 'v1' }],
      preferredVersion: { groupVersion: 'discovery.k8s.io/v1', version: 'v1' },
    };
    const resource = (r: Resource, shortNames: string[]): Json => ({
      name: r.name,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: ['get', 'list', 'watch'],
      ...(shortNames.length > 0 ? { shortNames } : {}),
    });
    switch (path) {
      case '/version':
        return VERSION;
      case '/healthz':
      case '/livez':
      case '/readyz':
        return 'ok';
      case '/api':
        return {
          kind: 'APIVersions',
          versions: ['v1'],
          serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.#hostPort }],
        };
      case '/apis':
        return { kind: 'APIGroupList', apiVersion: 'v1', groups: [group] };
      case '/apis/discovery.k8s.io':
        return { kind: 'APIGroup', apiVersion: 'v1', ...group };
      case '/api/v1':
        return { kind: 'APIResourceList', groupVersion: 'v1', resources: [resource(NODES, ['no'])] };
      case '/apis/discovery.k8s.io/v1':
        return {
          kind: 'APIResourceList',
          apiVersion: 'v1',
          groupVersion: 'discovery.k8s.io/v1',
          resources: [resource(SLICES, [])],
        };
      default:
        return undefined;
    }
  }
}

/**
 * Starts a stand-in Kubernetes API server on loopback (see the module
 * header for what it serves and what it does not).
 *
 * @example
 * ```ts
 * const server = await startKubeApi();
 * afterAll(() => server.close());
 * ```
 */
export async function startKubeApi(options: KubeApiOptions = {}): Promise<KubeApiServer> {
  const host = options.host ?? '127.0.0.1';
  const pem = await certificates(host);
  const server = createServer({ key: pem.key, cert: pem.cert });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const hostPort = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  let dir: string;
  try {
    dir = await mkdtemp(join(tmpdir(), 'kube-api-'));
  } catch (error) {
    server.close();
    throw error;
  }
  const standIn = new StandIn(server, `https://${hostPort}`, hostPort, dir, pem.ca);
  await writeFile(standIn.kubeconfigPath, standIn.kubeconfig, { mode: 0o600 });
  return standIn;
}

/**
 * Builds the JSON of an EndpointSlice of `service` (labels
 * `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`),
 * in namespace `default` unless told, with one port `grpc` 50051/TCP unless
 * told. A condition left `undefined` or `null` is omitted, as the API omits
 * an unknown condition.
 *
 * @example
 * ```ts
 * server.apply(endpointSlice({
 *   name: 'orders-abc12', namespace: 'shop', service: 'orders',
 *   endpoints: [{ addresses: ['10.0.0.1'], ready: true, zone: 'a', pod: 'orders-0', forZones: ['a'] }],
 * }));
 * ```
 */
export function endpointSlice(o: {
  name: string;
  namespace?: string;
  service: string;
  addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  ports?: { name?: string; port?: number; protocol?: string }[];
  endpoints: {
    addresses: string[];
    ready?: boolean | null;
    serving?: boolean | null;
    terminating?: boolean | null;
    zone?: string;
    nodeName?: string;
    pod?: string;
    forZones?: string[];
    hostname?: string;
  }[];
}): EndpointSliceInput {
  const namespace = o.namespace ?? 'default';
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: o.name,
      namespace,
      labels: {
        'kubernetes.io/service-name': o.service,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
      },
    },
    addressType: o.addressType ?? 'IPv4',
    endpoints: o.endpoints.map((e) => {
      const conditions: { ready?: boolean; serving?: boolean; terminating?: boolean } = {};
      if (e.ready !== undefined && e.ready !== null) conditions.ready = e.ready;
      if (e.serving !== undefined && e.serving !== null) conditions.serving = e.serving;
      if (e.terminating !== undefined && e.terminating !== null) conditions.terminating = e.terminating;
      const endpoint: EndpointSliceEndpoint = { addresses: [...e.addresses], conditions };
      if (e.hostname !== undefined) endpoint.hostname = e.hostname;
      if (e.nodeName !== undefined) endpoint.nodeName = e.nodeName;
      if (e.zone !== undefined) endpoint.zone = e.zone;
      if (e.pod !== undefined) endpoint.targetRef = { kind: 'Pod', name: e.pod, namespace };
      if (e.forZones !== undefined) endpoint.hints = { forZones: e.forZones.map((name) => ({ name })) };
      return endpoint;
    }),
    ports: (o.ports ?? [{ name: 'grpc', port: 50051, protocol: 'TCP' }]).map((p) => ({ ...p })),
  };
}
