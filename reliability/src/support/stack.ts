/**
 * The full client stack the reliability tests drive, built from the public
 * packages exactly as a user would:
 *
 * discovery → `connect` (each address becomes `grpcEndpoint`, wrapped by a
 * health check and outlier detection) → `p2c` → `retry` with a
 * `retryBudget` → `timeout` → `createChannel` with the echo service
 * definition → a proto-loader client whose interceptor feeds a
 * {@link Ledger}.
 *
 * @module
 */
import { type Balancer, type P2cOptions, p2c } from '@grpc-tower/balance';
import { type Endpoint, ServiceBuilder, timeout, type Discover } from '@grpc-tower/core';
import {
  type GrpcEndpointOptions,
  type GrpcRequest,
  type GrpcResponse,
  type TowerChannel,
  createChannel,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import { type DiscoveredAddress, connect } from '@grpc-tower/discover';
import {
  type HealthCheckOptions,
  type HealthChecker,
  type OutlierDetectionOptions,
  type OutlierDetector,
  healthChecked,
  outlierDetection,
} from '@grpc-tower/health';
import { type RetryBudget, type RetryLayer, type RetryPolicy, retry, retryBudget } from '@grpc-tower/retry';
import { type EchoProtoClient, createEchoClient, insecure, loadEchoPackage } from '@grpc-tower/testing';
import type { Ledger } from '../ledger.js';

/** Options of {@link fullStack}. */
export interface FullStackOptions {
  /** Where the addresses come from. */
  readonly source: Discover<string, DiscoveredAddress>;
  /** The logical target; default `'echo.reliability'`. */
  readonly target?: string;
  /** The ledger whose interceptor the client uses. */
  readonly ledger?: Ledger;
  /** The whole-call timeout layer, in ms; default 10 000. */
  readonly timeoutMs?: number;
  /** The retry policy; `budget` defaults to a fresh `retryBudget()`. */
  readonly retry?: RetryPolicy;
  /** p2c options (target is set from `target`). */
  readonly balancer?: Omit<P2cOptions, 'target'>;
  /** Health checking: options, or `false` for none; default on with a 100 ms backoff. */
  readonly health?: HealthCheckOptions | false;
  /** Outlier detection: options, or `false` for none; default on. */
  readonly outlier?: OutlierDetectionOptions | false;
  /** Options of every endpoint (credentials, authority…); default plaintext, `{ credentials: insecure }`. */
  readonly endpoint?: GrpcEndpointOptions;
  /** Makes the endpoint of an address instead (health checking and outlier detection still wrap it). */
  readonly makeEndpoint?: (address: string) => Endpoint<GrpcRequest, GrpcResponse>;
}

/** A running stack. */
export interface FullStack {
  readonly client: EchoProtoClient;
  readonly channel: TowerChannel;
  readonly balancer: Balancer<GrpcRequest, GrpcResponse, string>;
  readonly retries: RetryLayer;
  readonly budget: RetryBudget | undefined;
  readonly health: HealthChecker | undefined;
  readonly detector: OutlierDetector | undefined;
  /** Closes the client, the channel (balancer, endpoints, discovery) and the detector. */
  close(): Promise<void>;
}

/**
 * Builds the full stack over `source`.
 *
 * @example
 * ```ts
 * const stack = fullStack({ source: staticList(addresses), ledger });
 * await ledger.unary(stack.client, 'hi');
 * await stack.close();
 * ```
 */
export function fullStack(options: FullStackOptions): FullStack {
  const target = options.target ?? 'echo.reliability';
  const health =
    options.health === false ? undefined : healthChecked({ backoff: { initialMs: 100 }, ...options.health });
  const detector = options.outlier === false ? undefined : outlierDetection(options.outlier);
  const endpoints = connect(options.source, (a: DiscoveredAddress) => {
    const ep =
      options.makeEndpoint?.(a.address) ??
      grpcEndpoint(a.address, options.endpoint ?? { credentials: insecure });
    const checked = health === undefined ? ep : health(ep);
    return detector === undefined ? checked : detector.wrap(checked);
  });
  const balancer = p2c(endpoints, { ...options.balancer, target });
  const budget = options.retry?.budget === undefined ? retryBudget() : undefined;
  const retries = retry({ ...(budget === undefined ? {} : { budget }), ...options.retry });
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: options.timeoutMs ?? 10_000 }))
    .layer(retries)
    .service(balancer);
  const channel = createChannel(stack, {
    target,
    services: [loadEchoPackage().EchoService],
  });
  const client = createEchoClient(target, {
    channelOverride: channel,
    ...(options.ledger === undefined ? {} : { interceptors: [options.ledger.interceptor] }),
  });
  let closing: Promise<void> | undefined;
  return {
    client,
    channel,
    balancer,
    retries,
    budget,
    health,
    detector,
    close: () => {
      closing ??= (async () => {
        client.close();
        await channel.closeAsync();
        detector?.close();
      })();
      return closing;
    },
  };
}
