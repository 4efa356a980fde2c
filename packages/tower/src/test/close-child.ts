// A process whose only work is one slow call, through towerChannel (gRPC)
// or towerDispatcher (HTTP/2 through undici), closed at once as a SIGTERM
// handler would close it: it must exit by itself when the call has ended,
// the call OK. Prints one JSON line per event.
// Usage: node --conditions=@grpc-tower/source --import tsx close-child.ts native|grpc-js|undici <host:port> <delayMs>
// (native and grpc-js: towerChannel over that transport)
import * as grpc from '@grpc/grpc-js';
import { staticList } from '@grpc-tower/discover';
import { createEchoClient, loadEchoPackage } from '@grpc-tower/testing';
import { request } from 'undici';
import { towerChannel } from '../channel.js';
import { towerDispatcher } from '../undici/index.js';

const [mode, address, delay] = process.argv.slice(2);
const started = performance.now();
const say = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ ...event, ms: Math.round(performance.now() - started) })}\n`);
};
process.on('exit', (code) => say({ event: 'exit', code }));

if (mode === 'native' || mode === 'grpc-js') {
  const { EchoService } = loadEchoPackage();
  const target = `ipv4:${address}`;
  const channel = towerChannel(target, grpc.credentials.createInsecure(), {
    services: [EchoService],
    transport: mode,
  });
  const client = createEchoClient(target, { channelOverride: channel });
  client.Unary({ message: 'slow', delayMs: Number(delay) }, new grpc.Metadata(), {}, (err, reply) => {
    say({ event: 'call', ok: err === null, message: reply?.message, details: err?.details });
  });
  // the call has started: close, as `process.once('SIGTERM', () => client.close())` would
  client.close();
  say({ event: 'closed', activeCalls: channel.activeCalls });
} else {
  const origin = 'http://orders.test:8080';
  const dispatcher = towerDispatcher(origin, { discovery: staticList([address as string]) });
  request(`${origin}/slow`, { dispatcher }).then(
    async (res) => {
      const text = await res.body.text();
      say({ event: 'call', ok: res.statusCode === 200, message: JSON.parse(text).path });
    },
    (err: Error) => say({ event: 'call', ok: false, details: err.message }),
  );
  // the request has started: close, as `process.once('SIGTERM', () => dispatcher.close())` would
  void dispatcher.close();
  say({ event: 'closed', activeCalls: dispatcher.stats().inFlight });
}
