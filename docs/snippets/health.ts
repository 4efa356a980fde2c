// Snippets of docs/guides/health.md.
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { Status } from '@grpc-tower/core';
import { grpcEndpoint } from '@grpc-tower/core/grpc';
import { http2Endpoint, httpProtocol } from '@grpc-tower/core/http2';
import { connect, dns } from '@grpc-tower/discover';
import { healthChecked, httpHealthChecked, outlierDetection, slowStart } from '@grpc-tower/health';
import { HealthImplementation } from 'grpc-health-check';
import { merge } from 'rxjs';

export function wrap(): void {
  // #region wrap
  const health = healthChecked(); // grpc.health.v1 Watch, service '' (the whole server)
  const outliers = outlierDetection(); // 5 failures in a row eject a server for 30 s
  const endpoints = connect(dns('orders.internal', 50051), (addr) =>
    // health right around the connection, outlier detection around that
    outliers.wrap(health(grpcEndpoint(addr.address, { credentials: grpc.credentials.createInsecure() }))),
  );
  const balancer = p2c(endpoints, { target: 'dns:orders.internal:50051' }); // picks ready servers only
  // #endregion wrap

  // #region events
  merge(health.events$, outliers.events$).subscribe((e) => {
    switch (e.type) {
      case 'health':
        console.info(`${e.endpoint}: ${e.from} → ${e.to} (${e.reason})`);
        break;
      case 'unimplemented':
        console.info(`${e.endpoint} has no health service; treated as healthy`);
        break;
      case 'ejected':
        console.warn(`${e.endpoint} ejected for ${e.durationMs} ms: ${e.reason}`);
        break;
      case 'unenforced': // an outlier kept in: maxEjectionPercent reached, or the enforcement draw said no
        console.warn(`${e.endpoint} is an outlier (${e.algorithm}) but stays in: ${e.because}`);
        break;
      case 'returned':
        console.info(`${e.endpoint} back after ${e.ejectedMs} ms`);
        break;
    }
  });
  // #endregion events
  void balancer;
}

export function options(): void {
  // #region check-options
  // ask for one service's health, and poll with Check where Watch is not supported
  const perService = healthChecked({ service: 'shop.Orders' });
  const polling = healthChecked({ mode: 'check', intervalMs: 5_000, timeoutMs: 1_000 });
  // #endregion check-options

  // #region outlier-options
  const outliers = outlierDetection({
    consecutiveFailures: 5, // eject at once after 5 failed calls in a row (0: off)
    failureCodes: ['UNAVAILABLE', 'INTERNAL', 'UNKNOWN', 'DEADLINE_EXCEEDED'], // what counts as failed
    baseEjectionTimeMs: 30_000, // out for 30 s × times ejected…
    maxEjectionTimeMs: 300_000, // …at most 5 min
    maxEjectionPercent: 10, // never more than 10 % of the servers at once (but always at least one)
    intervalMs: 10_000, // how often the rates below are computed
    failurePercentageEjection: { threshold: 50, requestVolume: 20, minimumHosts: 3 },
    successRateEjection: true, // A50's defaults: 1.9 σ below the mean, 100 calls, 5 hosts
  });
  // #endregion outlier-options
  void [perService, polling, outliers, Status.OK];
}

export function panic(): void {
  const endpoints = connect(dns('orders.internal', 50051), (addr) =>
    grpcEndpoint(addr.address, { credentials: grpc.credentials.createInsecure() }),
  );
  // #region panic
  const balancer = p2c(endpoints, {
    // when fewer than 50 % of the known servers are ready, send to every server whose
    // connection is up, healthy or not, instead of piling everything on the few left
    panicThresholdPercent: 50, // the default; 0 turns it off
    // a server that just became ready gets a growing share over 30 s instead of a full one
    slowStart: slowStart({ windowMs: 30_000, minWeightPercent: 10 }),
  });
  // #endregion panic
  void balancer;
}

export function server(server: grpc.Server): void {
  // #region server
  // the server side, with the grpc-health-check package: SERVING while up, NOT_SERVING before stopping
  const health = new HealthImplementation({ '': 'SERVING', 'shop.Orders': 'SERVING' });
  health.addToServer(server);
  process.once('SIGTERM', () => {
    health.setStatus('', 'NOT_SERVING'); // checking clients stop sending new calls within a round trip
    setTimeout(() => server.tryShutdown(() => process.exit(0)), 15_000); // then drain (see the Kubernetes example)
  });
  // #endregion server
}

export function http(): void {
  // #region http-check
  const health = httpHealthChecked({
    path: '/healthz', // required: GET /healthz on each endpoint's own HTTP/2 session
    expectedStatuses: [[200, 399]], // the default, as a Kubernetes probe (Envoy's is 200 only)
    intervalMs: 5_000, // between the end of one check and the next
    timeoutMs: 1_000, // a check without an answer by then has failed
    unhealthyThreshold: 2, // failures in a row that take a healthy server out
    healthyThreshold: 2, // successes in a row that bring it back
    initialJitterMs: 1_000, // spread the first checks of many clients started together
    headers: { ':authority': 'items.internal' }, // HTTP/2's Host, or a token
  });
  // #endregion http-check

  // #region http-outliers
  const outliers = outlierDetection({ protocol: httpProtocol() }); // 5xx and failed streams fail; 4xx never do
  const endpoints = connect(dns('items.internal', 8080), (addr) =>
    // the checks go straight to the endpoint: outlier detection and the balancer never see them
    outliers.wrap(health(http2Endpoint(addr.address, { scheme: 'http' }))),
  );
  const balancer = p2c(endpoints, { target: 'dns:items.internal:8080' });
  // #endregion http-outliers
  void balancer;
}
