import { afterEach, describe, expect, it } from 'vitest';
import { activeHandles, expectNoLeaks, loopbackAddress, pickHosts } from './leaks.js';
import { startEchoServer } from './server.js';

describe('expectNoLeaks', () => {
  let leaked: NodeJS.Timeout | undefined;
  afterEach(() => {
    clearInterval(leaked);
    leaked = undefined;
  });

  it('detects a leaked interval and names its type', async () => {
    const before = activeHandles();
    leaked = setInterval(() => {}, 1000);
    await expect(expectNoLeaks(before, { settleMs: 50 })).rejects.toThrow(/Timeout: \d+ → \d+ \(\+1\)/);
  });

  it('passes once a resource released later is gone', async () => {
    const before = activeHandles();
    const timer = setTimeout(() => {}, 30);
    expect(activeHandles().Timeout ?? 0).toBeGreaterThan(before.Timeout ?? 0);
    await expectNoLeaks(before, { settleMs: 2000 });
    clearTimeout(timer);
  });

  it('sees a server that was never stopped, and passes once it is', async () => {
    const before = activeHandles();
    const server = await startEchoServer({ host: pickHosts(1)[0]! });
    await expect(expectNoLeaks(before, { settleMs: 20 })).rejects.toThrow(/TCPServerWrap/);
    await server.stop();
    await expectNoLeaks(before, { settleMs: 2000 });
  });

  it('ignores the types it is told to', async () => {
    const before = activeHandles();
    leaked = setInterval(() => {}, 1000);
    await expectNoLeaks(before, { settleMs: 0, ignore: ['Timeout'] });
  });
});

describe('loopback hosts', () => {
  it('builds 127.0.0.n and refuses other n', () => {
    expect(loopbackAddress(1)).toBe('127.0.0.1');
    expect(loopbackAddress(254)).toBe('127.0.0.254');
    expect(() => loopbackAddress(0)).toThrow(RangeError);
    expect(() => loopbackAddress(255)).toThrow(RangeError);
    expect(() => loopbackAddress(1.5)).toThrow(RangeError);
  });

  it('picks distinct hosts from one block, other than 127.0.0.1', () => {
    const first = pickHosts(5);
    const second = pickHosts(5);
    const all = [...first, ...second];
    expect(new Set(all).size).toBe(10);
    const last = all.map((h) => Number(h.split('.')[3]));
    expect(last.every((n) => n >= 2 && n <= 241)).toBe(true);
    expect(Math.max(...last) - Math.min(...last)).toBeLessThan(24);
    expect(() => pickHosts(0)).toThrow(RangeError);
    expect(() => pickHosts(25)).toThrow(RangeError);
  });
});
