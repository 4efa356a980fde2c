// Snippets of docs/guides/concepts.md (type-checked; copied into the guide by scripts/sync-snippets.ts).
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import {
  type CallContext,
  DeadlineExceededError,
  GrpcTowerError,
  type Layer,
  type Service,
  ServiceBuilder,
  background,
  newContext,
  serviceFn,
  timeout,
  withTimeout,
  type Change,
  type Discover,
} from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect, dns, staticList } from '@grpc-tower/discover';
import { retry } from '@grpc-tower/retry';
import { towerChannel } from 'grpc-tower';
import { Subject } from 'rxjs';

declare const OrdersClient: grpc.ServiceClientConstructor;
declare const OrdersService: grpc.ServiceDefinition;

export async function services(): Promise<void> {
  // #region service
  // a Service turns a request into a promised response
  const length: Service<string, number> = serviceFn(async (text: string) => text.length);

  // every call gets a context: an AbortSignal and an absolute deadline
  await length.call('hello', background); // 5: no deadline, never cancelled
  const scope = newContext({ timeoutMs: 500 }); // aborts after 500 ms
  try {
    await length.call('hello', scope.context);
  } finally {
    scope.release(); // clears the timer
  }
  // #endregion service
}

// #region layer
// a Layer wraps a service in another; its settings live in the closure
export function logErrors<Req, Res>(label: string): Layer<Req, Res> {
  return (inner) => ({
    async call(req, ctx) {
      try {
        return await inner.call(req, ctx);
      } catch (err) {
        console.warn(`${label}: ${err instanceof Error ? err.message : String(err)}`);
        throw err;
      }
    },
  });
}
// #endregion layer

export function builder(): Service<string, number> {
  const length = serviceFn(async (text: string) => text.length);
  // #region builder
  // the first layer added is the outermost: it sees the request first
  const stack = new ServiceBuilder<string, number>()
    .layer(timeout({ ms: 1_000 })) // 1. one deadline for everything below
    .layer(logErrors('length')) //    2. sees the timeout's child context
    .service(length); //              3. the service itself
  // the same as timeout({ ms: 1_000 })(logErrors<string, number>('length')(length))
  // #endregion builder
  return stack;
}

// #region context
// a layer that gives the inner service less time: derive a child context, release it in finally
export function atMost<Req, Res>(ms: number): Layer<Req, Res> {
  return (inner) => ({
    async call(req: Req, ctx: CallContext) {
      const scope = withTimeout(ctx, ms); // its signal aborts at min(ctx.deadline, now + ms)
      try {
        return await inner.call(req, scope.context);
      } finally {
        scope.release(); // always: clears the timer and the listener on ctx.signal
      }
    },
  });
}
// #endregion context

export function endpoint(): void {
  // #region endpoint
  // an Endpoint is a Service for one address that also tells whether it can take calls
  // its credentials are required: grpc.credentials.createSsl(...) for TLS, or plaintext chosen explicitly
  const ep = grpcEndpoint('10.0.0.7:50051', { credentials: grpc.credentials.createInsecure() });
  ep.readiness; // 'connecting' now, then 'ready', 'failed' (reconnecting with backoff), 'closed'
  ep.readiness$.subscribe((r) => console.log(ep.address, r));
  ep.pending; // calls in flight: part of its load
  void ep.close({ graceMs: 10_000 }); // drains: no new calls, the ones in flight finish
  // #endregion endpoint
}

export function discovery(): void {
  // #region discover
  // a Discover is an RxJS Observable of changes, keyed (here by address)
  const changes = new Subject<Change<string, string>>();
  const discover: Discover<string, string> = changes;
  changes.next({ type: 'insert', key: '10.0.0.7:50051', endpoint: '10.0.0.7:50051' });
  changes.next({ type: 'remove', key: '10.0.0.7:50051' });

  // the sources of @grpc-tower/discover emit addresses; connect() turns them into endpoints
  const endpoints = connect(dns('orders.internal', 50051), (addr) =>
    grpcEndpoint(addr.address, { credentials: grpc.credentials.createInsecure() }),
  );
  const fixed = connect(staticList(['10.0.0.7:50051', '10.0.0.8:50051']), (addr) =>
    grpcEndpoint(addr.address, { credentials: grpc.credentials.createInsecure() }),
  );
  // #endregion discover
  void discover;
  void endpoints;
  void fixed;
}

export function channel(): void {
  // #region channel
  const balancer = p2c(
    connect(dns('orders.internal', 50051), (addr) =>
      grpcEndpoint(addr.address, { credentials: grpc.credentials.createSsl() }),
    ),
    { target: 'dns:orders.internal:50051' },
  );
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: 2_000 }))
    .layer(retry({ maxAttempts: 3 }))
    .service(balancer);
  // a grpc-js ChannelInterface: any grpc-js client uses it through channelOverride
  const channel = createChannel(stack, {
    target: 'dns:orders.internal:50051',
    services: [OrdersService], // the methods' shapes: which calls may be retried until their status
  });
  // grpc-js ignores a client's own credentials with channelOverride: the endpoints' are used
  const client = new OrdersClient('orders.internal:50051', grpc.credentials.createInsecure(), {
    channelOverride: channel,
  });
  // #endregion channel
  client.close();
}

export function shutdown(): void {
  const credentials = grpc.credentials.createInsecure();
  // #region shutdown
  const target = 'dns:///orders.internal:50051';
  const channel = towerChannel(target, credentials, { closeGraceMs: 20_000 }); // default 30 s
  const client = new OrdersClient(target, credentials, { channelOverride: channel });

  process.once('SIGTERM', () => {
    // returns at once, as grpc-js's does: new calls fail at once (UNAVAILABLE, "channel … is closing"),
    // calls in flight finish within 20 s; the process exits by itself when the last one has ended
    client.close();
  });
  // or, to do something once everything is released:
  process.once('SIGINT', async () => {
    await channel.closeGracefully({ graceMs: 5_000 }); // this close's own grace
    console.log('all calls ended, every connection closed');
  });
  // #endregion shutdown
}

export async function errors(stack: Service<GrpcRequest, GrpcResponse>, req: GrpcRequest): Promise<void> {
  // #region errors
  try {
    await stack.call(req, background);
  } catch (err) {
    if (err instanceof DeadlineExceededError) console.warn('too slow:', err.message);
    else if (err instanceof GrpcTowerError) {
      // every failure has a gRPC status code, the server involved when there was one, and a cause
      console.warn(err.codeName, err.endpoint ?? '(no endpoint)', err.message, err.cause);
    }
  }
  // #endregion errors
}
