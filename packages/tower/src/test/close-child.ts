// A process whose only work is one slow call through towerChannel, closed
// at once as a SIGTERM handler would close it: it must exit by itself when
// the call has ended, the call OK. Prints one JSON line per event.
// Usage: node --import tsx close-child.ts <host:port> <delayMs>
import * as grpc from '@grpc/grpc-js';
import { createEchoClient, loadEchoPackage } from '@grpc-tower/testing';
import { towerChannel } from '../channel.js';

const [address, delay] = process.argv.slice(2);
const started = performance.now();
const say = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ ...event, ms: Math.round(performance.now() - started) })}\n`);
};

const { EchoService } = loadEchoPackage();
const target = `ipv4:${address}`;
const channel = towerChannel(target, grpc.credentials.createInsecure(), { services: [EchoService] });
const client = createEchoClient(target, { channelOverride: channel });
client.Unary({ message: 'slow', delayMs: Number(delay) }, new grpc.Metadata(), {}, (err, reply) => {
  say({ event: 'call', ok: err === null, message: reply?.message, details: err?.details });
});
// the call has started: close, as `process.once('SIGTERM', () => client.close())` would
client.close();
say({ event: 'closed', activeCalls: channel.activeCalls });
process.on('exit', (code) => say({ event: 'exit', code }));
