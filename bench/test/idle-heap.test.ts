// The idle-heap probe of the transport scenario, run alone (it measures heap,
// not time): each kind, in a fresh process of its own, connects every one of
// its endpoints or channels to a real echo server and reports a positive
// heap per connection that stands well above the measurement's noise; bad
// arguments fail the child with a message saying which.
import { type EchoServer, pickHosts, startEchoServer } from '@grpc-tower/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { measureIdleHeap } from '../lib/idle-heap-probe.js';

let server: EchoServer;
beforeAll(async () => {
  server = await startEchoServer({ host: pickHosts(1)[0]!, name: 'idle' });
});
afterAll(() => server?.stop(100));

describe('the idle-heap probe', () => {
  test.each(['native', 'grpc-js'] as const)(
    '%s: a positive heap per connected, idle one, above the noise',
    async (kind) => {
      const heap = await measureIdleHeap(kind, server.address, 20);
      console.log(
        `idle heap, ${kind}: ${Math.round(heap.bytesPerEndpoint)} B each (noise ${heap.noiseBytes} B)`,
      );
      expect(heap.kind).toBe(kind);
      expect(heap.count).toBe(20);
      expect(Number.isFinite(heap.bytesPerEndpoint)).toBe(true);
      expect(heap.bytesPerEndpoint).toBeGreaterThan(0);
      expect(heap.keptBytes).toBe(heap.bytesPerEndpoint * 20);
      expect(heap.keptBytes).toBeGreaterThanOrEqual(10 * heap.noiseBytes);
    },
  );

  test('a kind it does not know, or a count that is not a positive integer, fails the probe saying which', async () => {
    await expect(measureIdleHeap('quic' as never, server.address, 5)).rejects.toThrow(
      /idle heap probe \(quic\) exited with 1: [\s\S]*kind quic is not one of native, grpc-js/,
    );
    await expect(measureIdleHeap('native', server.address, 0)).rejects.toThrow(
      /count 0 is not a positive integer/,
    );
  });

  test('a server that is not there fails the probe naming the address', async () => {
    const [host] = pickHosts(1);
    await expect(measureIdleHeap('grpc-js', `${host}:1`, 1, { connectMs: 1_000 })).rejects.toThrow(
      new RegExp(`a grpc-js channel to ${host}:1 did not connect within 1000 ms`),
    );
  });
});
