// What a gRPC server should do when Kubernetes stops its pod, so that its
// clients lose no call.
//
// On SIGTERM (sent when the pod starts terminating, at the same time as
// Kubernetes starts taking the pod out of the Service's endpoints):
//
// 1. report NOT_SERVING on the grpc.health.v1 service: clients that watch
//    health (grpc-tower's `healthChecked`) stop sending new calls within a
//    round trip, long before DNS changes;
// 2. keep serving for `drainDelayMs`: DNS answers are cached (CoreDNS keeps
//    headless records 5 s by default) and clients re-resolve on their own
//    schedule (grpc-tower's `dns` every 5 s), so a client that does not
//    check health may still send here for that long;
// 3. stop taking new calls (GOAWAY) and let the calls in flight finish;
// 4. after `graceMs`, cancel what is left and exit.
//
// terminationGracePeriodSeconds must be longer than drainDelayMs + graceMs.
import type * as grpc from '@grpc/grpc-js';

// #region shutdown
/** Options of {@link gracefulShutdown}. */
export interface ShutdownOptions {
  /** How long to keep serving after NOT_SERVING; default 15 s. */
  readonly drainDelayMs?: number;
  /** How long calls in flight may take after that; default 20 s. */
  readonly graceMs?: number;
}

/** Drains `server` (see above); resolves once it has stopped. */
export async function gracefulShutdown(
  server: grpc.Server,
  markNotServing: () => void,
  options: ShutdownOptions = {},
): Promise<void> {
  markNotServing();
  await new Promise((resolve) => setTimeout(resolve, options.drainDelayMs ?? 15_000));
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, options.graceMs ?? 20_000);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

/**
 * Installs the SIGTERM handler, in the server's main module:
 *
 * ```ts
 * const health = new HealthImplementation({ '': 'SERVING' });
 * health.addToServer(server);
 * onSigterm(server, () => health.setStatus('', 'NOT_SERVING'), {
 *   drainDelayMs: Number(process.env.DRAIN_DELAY_MS ?? 15_000),
 * });
 * ```
 */
export function onSigterm(server: grpc.Server, markNotServing: () => void, options?: ShutdownOptions): void {
  process.once('SIGTERM', () => {
    gracefulShutdown(server, markNotServing, options).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
// #endregion shutdown
