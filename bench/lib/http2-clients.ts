/**
 * The clients of the http2 scenario (and of `bench/profile.ts`'s `http2-*`
 * modes), each over one TLS origin whose certificate names `bench.test`.
 *
 * @module
 */
import * as http2 from 'node:http2';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, newContext, timeout } from '@grpc-tower/core';
import { type Http2Request, type Http2Response, http2Endpoint, httpProtocol } from '@grpc-tower/core/http2';
import { connect, staticList } from '@grpc-tower/discover';
import { outlierDetection } from '@grpc-tower/health';
import { httpRetry } from '@grpc-tower/retry';
import { towerDispatcher } from 'grpc-tower/undici';
import { Pool, request } from 'undici';

export const NODE = 'node:http2 (one session)';
export const UNDICI = 'undici Pool (allowH2, one connection)';
export const STACK = 'stack (http2Endpoint → outlier → p2c → httpRetry → timeout)';
export const DISPATCHER = 'undici.request() through towerDispatcher';
export const NAME = 'bench.test';
/**
 * undici's Pool sends at most `pipelining` requests at a time on a
 * connection, HTTP/2 included (default 1: one request at a time over the one
 * connection, 6.6k requests/s here); 32, the scenario's concurrency, lets it
 * multiplex them (13k/s), its best showing, so that is the baseline.
 */
const PIPELINING = 32;

/** One client: a request per `call()`. */
export interface Client {
  readonly name: string;
  call(): Promise<string>;
  close(): Promise<void>;
}

/** Reads a response body to its end. */
function drain(stream: http2.ClientHttp2Stream): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.on('data', () => undefined);
    stream.once('end', resolve);
    stream.once('error', reject);
  });
}

export function nodeClient(origin: string, ca: Buffer): Client {
  const session = http2.connect(origin, { ca, servername: NAME });
  session.on('error', () => undefined);
  return {
    name: NODE,
    async call() {
      const stream = session.request({ ':method': 'GET', ':path': '/items/7', ':authority': NAME });
      stream.end();
      await drain(stream);
      return 'http2';
    },
    close: () => new Promise((resolve) => session.close(() => resolve())),
  };
}

export function undiciClient(origin: string, ca: Buffer): Client {
  const pool = new Pool(origin, {
    allowH2: true,
    connections: 1,
    pipelining: PIPELINING,
    connect: { ca, servername: NAME },
  });
  return {
    name: UNDICI,
    async call() {
      const res = await pool.request({ method: 'GET', path: '/items/7', headers: { host: NAME } });
      await res.body.text();
      return 'http2';
    },
    close: () => pool.close(),
  };
}

export function stackClient(address: string, ca: Buffer): Client {
  const detector = outlierDetection({ protocol: httpProtocol() });
  const endpoints = connect(staticList([address]), (a) =>
    detector.wrap(http2Endpoint(a.address, { scheme: 'https', authority: NAME, connectOptions: { ca } })),
  );
  const stack = new ServiceBuilder<Http2Request, Http2Response>()
    .layer(timeout({ ms: 10_000 }))
    .layer(httpRetry())
    .service(p2c(endpoints, { target: `https://${NAME}` }));
  const req: Http2Request = { path: '/items/7' };
  return {
    name: STACK,
    async call() {
      const scope = newContext();
      try {
        const res = await stack.call(req, scope.context);
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        return 'http2';
      } finally {
        scope.release();
      }
    },
    async close() {
      await stack.close();
      detector.close();
    },
  };
}

export function dispatcherClient(address: string, ca: Buffer): Client {
  const origin = `https://${NAME}:${address.split(':')[1]}`;
  const dispatcher = towerDispatcher(origin, {
    discovery: staticList([address]),
    connectOptions: { ca },
  });
  return {
    name: DISPATCHER,
    async call() {
      const res = await request(`${origin}/items/7`, { dispatcher });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      return 'http2';
    },
    close: () => dispatcher.close(),
  };
}
