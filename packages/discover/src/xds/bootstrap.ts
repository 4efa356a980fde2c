/**
 * The xDS bootstrap: which management server to ask, with which channel
 * credentials, and as which node. Read from an option, or as gRPC does
 * from `GRPC_XDS_BOOTSTRAP` (a file) or `GRPC_XDS_BOOTSTRAP_CONFIG` (the
 * JSON itself), in that order.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '@grpc-tower/core';

/**
 * The node this client says it is, sent in the first request of each stream.
 *
 * @example
 * ```ts
 * const node: XdsNode = { id: 'orders-client-7d4b9', locality: { zone: 'eu-west-1a' } };
 * ```
 */
export interface XdsNode {
  readonly id: string;
  readonly cluster?: string;
  /** The client's own locality; its `zone` is the client's zone for zone-aware routing. */
  readonly locality?: { readonly region?: string; readonly zone?: string; readonly subZone?: string };
}

/**
 * A bootstrap, in the shape of gRPC's bootstrap JSON (only the first of
 * `xds_servers` is used; `channel_creds` types `insecure` and `tls`).
 *
 * @example
 * ```ts
 * const bootstrap: XdsBootstrap = {
 *   xds_servers: [{ server_uri: 'istiod.istio-system:15010', channel_creds: [{ type: 'insecure' }] }],
 *   node: { id: 'orders-client' },
 * };
 * ```
 */
export interface XdsBootstrap {
  readonly xds_servers: readonly {
    readonly server_uri: string;
    readonly channel_creds?: readonly { readonly type: string; readonly config?: unknown }[];
    readonly server_features?: readonly string[];
  }[];
  readonly node?: {
    readonly id?: string;
    readonly cluster?: string;
    readonly locality?: { readonly region?: string; readonly zone?: string; readonly sub_zone?: string };
  };
}

/**
 * What the source uses from a bootstrap.
 *
 * @example
 * ```ts
 * const { serverUri, node } = loadBootstrap(undefined);
 * console.log(`xDS from ${serverUri} as ${node.id}, zone ${node.locality?.zone ?? 'unknown'}`);
 * ```
 */
export interface ResolvedBootstrap {
  readonly serverUri: string;
  /** The first channel_creds type this source knows: `insecure` or `tls`. */
  readonly credentials: 'insecure' | 'tls';
  readonly node: XdsNode;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const optString = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * Reads the bootstrap from `given` (an object or JSON text), else from the
 * environment. Throws a `ConfigError` naming what is missing or wrong.
 *
 * @example
 * ```ts
 * const b = loadBootstrap(undefined, process.env); // GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG
 * ```
 */
export function loadBootstrap(
  given: XdsBootstrap | string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ResolvedBootstrap {
  let raw: unknown = given;
  let option = 'bootstrap';
  if (raw === undefined) {
    const file = env.GRPC_XDS_BOOTSTRAP;
    const text = env.GRPC_XDS_BOOTSTRAP_CONFIG;
    if (file !== undefined && file !== '') {
      option = `GRPC_XDS_BOOTSTRAP (${file})`;
      try {
        raw = readFileSync(file, 'utf8');
      } catch (err) {
        throw new ConfigError('xds', option, file, `a readable file (${(err as Error).message})`);
      }
    } else if (text !== undefined && text !== '') {
      option = 'GRPC_XDS_BOOTSTRAP_CONFIG';
      raw = text;
    } else {
      throw new ConfigError(
        'xds',
        'bootstrap',
        undefined,
        'given, or set in GRPC_XDS_BOOTSTRAP (a file) or GRPC_XDS_BOOTSTRAP_CONFIG (JSON)',
      );
    }
  }
  if (typeof raw === 'string') {
    try {
      raw = JSON.parse(raw);
    } catch (err) {
      throw new ConfigError('xds', option, raw, `JSON (${(err as Error).message})`);
    }
  }
  if (!isObject(raw)) throw new ConfigError('xds', option, raw, 'an object with xds_servers');
  const servers = raw.xds_servers;
  if (!Array.isArray(servers) || servers.length === 0 || !isObject(servers[0])) {
    throw new ConfigError('xds', `${option}.xds_servers`, servers, 'a list of at least one server');
  }
  const server = servers[0];
  const serverUri = optString(server.server_uri);
  if (serverUri === undefined) {
    throw new ConfigError(
      'xds',
      `${option}.xds_servers[0].server_uri`,
      server.server_uri,
      'a non-empty string',
    );
  }
  const creds = Array.isArray(server.channel_creds) ? server.channel_creds : [];
  const known = creds
    .map((c) => (isObject(c) ? c.type : undefined))
    .find((t) => t === 'insecure' || t === 'tls');
  if (known === undefined) {
    throw new ConfigError(
      'xds',
      `${option}.xds_servers[0].channel_creds`,
      server.channel_creds,
      'a list naming "insecure" or "tls" (or pass the credentials option)',
    );
  }
  const node = isObject(raw.node) ? raw.node : {};
  const loc = isObject(node.locality) ? node.locality : undefined;
  const region = optString(loc?.region);
  const zone = optString(loc?.zone);
  const subZone = optString(loc?.sub_zone);
  const cluster = optString(node.cluster);
  return {
    serverUri,
    credentials: known as 'insecure' | 'tls',
    node: {
      id: optString(node.id) ?? '',
      ...(cluster === undefined ? {} : { cluster }),
      ...(loc === undefined
        ? {}
        : {
            locality: {
              ...(region === undefined ? {} : { region }),
              ...(zone === undefined ? {} : { zone }),
              ...(subZone === undefined ? {} : { subZone }),
            },
          }),
    },
  };
}
