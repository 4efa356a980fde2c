// Runtime behaviour of the Service model. The services here are in-process
// serviceFn functions: the builder and the map/filter layers are generic.
import { BehaviorSubject } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { type CallContext, background, contextKey } from './context/index.js';
import type { Readiness } from './endpoint.js';
import { ConfigError, UnavailableError } from './errors.js';
import { hasLifecycle } from './stack.js';
import {
  type Layer,
  type Service,
  ServiceBuilder,
  filter,
  mapError,
  mapRequest,
  mapResponse,
  serviceFn,
} from './service.js';

/** A layer that records when the request passes in and the response passes out. */
function tracing(name: string, log: string[]) {
  return <Req, Res>(inner: Service<Req, Res>): Service<Req, Res> => ({
    async call(req, ctx) {
      log.push(`${name} in`);
      try {
        return await inner.call(req, ctx);
      } finally {
        log.push(`${name} out`);
      }
    },
  });
}

describe('serviceFn', () => {
  test('calls the function with the request and the context', async () => {
    const Key = contextKey<string>('who');
    const seen: CallContext[] = [];
    const svc = serviceFn(async (s: string, ctx: CallContext) => {
      seen.push(ctx);
      return `${s} ${ctx.get(Key)}`;
    });
    const ctx = background.withValue(Key, 'there');
    await expect(svc.call('hi', ctx)).resolves.toBe('hi there');
    expect(seen).toEqual([ctx]);
  });
});

describe('ServiceBuilder', () => {
  test('the first layer added is the outermost: it sees the request first and the response last', async () => {
    const log: string[] = [];
    const svc = new ServiceBuilder<string, string>()
      .layer(tracing('a', log))
      .layer(tracing('b', log))
      .layer(tracing('c', log))
      .service(
        serviceFn(async (s: string) => {
          log.push('service');
          return s;
        }),
      );
    await svc.call('x', background);
    expect(log).toEqual(['a in', 'b in', 'c in', 'service', 'c out', 'b out', 'a out']);
  });

  test('builder.layer(a).layer(b).service(s) is a(b(s))', async () => {
    const wrap =
      (tag: string): Layer<string, string> =>
      (inner) => ({ call: async (req, ctx) => `${tag}(${await inner.call(req, ctx)})` });
    const base = serviceFn(async (s: string) => s);
    const built = new ServiceBuilder<string, string>().layer(wrap('a')).layer(wrap('b')).service(base);
    const manual = wrap('a')(wrap('b')(base));
    await expect(built.call('s', background)).resolves.toBe('a(b(s))');
    await expect(manual.call('s', background)).resolves.toBe('a(b(s))');
  });

  test('toLayer composes in the same order, and the builder is immutable', async () => {
    const log: string[] = [];
    const first = new ServiceBuilder<string, string>().layer(tracing('a', log));
    const second = first.layer(tracing('b', log));
    const inner = serviceFn(async (s: string) => {
      log.push('service');
      return s;
    });
    await second.toLayer()(inner).call('x', background);
    expect(log).toEqual(['a in', 'b in', 'service', 'b out', 'a out']);
    log.length = 0;
    // adding b made a new builder; the first still has only a
    await first.service(inner).call('x', background);
    expect(log).toEqual(['a in', 'service', 'a out']);
  });

  test('with no layers, service() returns a service that already has readiness and close() itself', () => {
    const readiness$ = new BehaviorSubject<Readiness>('connecting');
    const inner = {
      call: async (s: string) => s,
      get readiness() {
        return readiness$.value;
      },
      readiness$,
      close: async () => undefined,
    };
    expect(new ServiceBuilder().service(inner)).toBe(inner);
  });

  test('a stack reports the readiness of its innermost service and closes it', async () => {
    const readiness$ = new BehaviorSubject<Readiness>('connecting');
    let closed = 0;
    const inner = {
      call: async (s: string) => `${s}!`,
      get readiness() {
        return readiness$.value;
      },
      readiness$,
      close: async () => {
        closed++;
        readiness$.next('closed');
        readiness$.complete();
      },
    };
    // a layer that knows nothing of readiness or close
    const upper = (svc: Service<string, string>): Service<string, string> => ({
      call: async (s, ctx) => (await svc.call(s, ctx)).toUpperCase(),
    });
    const stack = new ServiceBuilder<string, string>().layer(upper).service(inner);
    const seen: Readiness[] = [];
    stack.readiness$.subscribe((r) => seen.push(r));
    expect(stack.readiness).toBe('connecting');
    readiness$.next('ready');
    expect(stack.readiness).toBe('ready');
    expect(await stack.call('a', background)).toBe('A!');
    await stack.close();
    expect(closed).toBe(1);
    expect(seen).toEqual(['connecting', 'ready', 'closed']);
  });

  test('a stack over a plain service is ready until closed, and closes the service when it can', async () => {
    let closed = 0;
    const inner = Object.assign(
      serviceFn(async (s: string) => s),
      { close: () => void closed++ },
    );
    const stack = new ServiceBuilder().service(inner);
    expect(stack).not.toBe(inner);
    expect(stack.readiness).toBe('ready');
    expect(await stack.call('x', background)).toBe('x');
    const seen: Readiness[] = [];
    stack.readiness$.subscribe((r) => seen.push(r));
    await stack.close();
    await stack.close();
    expect(closed).toBe(1);
    expect(stack.readiness).toBe('closed');
    expect(seen).toEqual(['ready', 'closed']);
    expect(hasLifecycle(stack)).toBe(true);
    expect(hasLifecycle(inner)).toBe(false);
  });

  test('layers are applied when service() is called, once per call of service()', () => {
    let applied = 0;
    const counting = <Req, Res>(inner: Service<Req, Res>): Service<Req, Res> => {
      applied++;
      return inner;
    };
    const builder = new ServiceBuilder<string, string>().layer(counting).layer(counting);
    expect(applied).toBe(0);
    builder.service(serviceFn(async (s: string) => s));
    expect(applied).toBe(2);
    builder.service(serviceFn(async (s: string) => s));
    expect(applied).toBe(4);
  });

  test('the context reaches the service through the layers', async () => {
    const Key = contextKey<number>('n');
    const svc = new ServiceBuilder<string, number | undefined>()
      .layer(tracing('a', []))
      .service(serviceFn(async (_s: string, ctx: CallContext) => ctx.get(Key)));
    await expect(svc.call('x', background.withValue(Key, 7))).resolves.toBe(7);
  });
});

describe('mapRequest / mapResponse', () => {
  test('mapRequest changes the request before the inner service sees it', async () => {
    const Key = contextKey<number>('base');
    const parse: Layer<number, number, string, number> = mapRequest((s: string, ctx: CallContext) =>
      Number.parseInt(s, ctx.get(Key) ?? 10),
    );
    const svc = parse(serviceFn(async (n: number) => n + 1));
    await expect(svc.call('41', background)).resolves.toBe(42);
    await expect(svc.call('ff', background.withValue(Key, 16))).resolves.toBe(256);
  });

  test('mapResponse changes the response on the way out', async () => {
    const len: Layer<string, string, string, number> = mapResponse((s: string) => s.length);
    await expect(len(serviceFn(async (s: string) => s.repeat(2))).call('abc', background)).resolves.toBe(6);
  });

  test('mapResponse does not see errors, and a throwing mapper rejects the call', async () => {
    let mapped = 0;
    const count: Layer<string, string> = mapResponse((s: string) => {
      mapped++;
      return s;
    });
    const failing = count(
      serviceFn(async (): Promise<string> => {
        throw new Error('inner');
      }),
    );
    await expect(failing.call('x', background)).rejects.toThrow('inner');
    expect(mapped).toBe(0);

    const throwingRequest: Layer<string, string> = mapRequest((): string => {
      throw new Error('bad request');
    });
    let reached = false;
    const svc = throwingRequest(
      serviceFn(async (s: string) => {
        reached = true;
        return s;
      }),
    );
    const p = svc.call('x', background);
    await expect(p).rejects.toThrow('bad request');
    expect(reached).toBe(false);
  });

  test('request and response maps compose in the builder, outermost first', async () => {
    const toText: Layer<string, number, string, string> = mapResponse((n: number) => `=${n}`);
    const parse: Layer<number, number, string, number> = mapRequest((s: string) => Number(s));
    const svc = new ServiceBuilder<string, string>()
      .layer(toText)
      .layer(parse)
      .service(serviceFn(async (n: number) => n * 2));
    await expect(svc.call('21', background)).resolves.toBe('=42');
  });
});

describe('mapError', () => {
  test('maps what the inner service throws, with the context at hand', async () => {
    const Key = contextKey<string>('endpoint');
    const svc = mapError(
      (err, ctx) => new UnavailableError('backend failed', { cause: err, endpoint: ctx.get(Key) }),
    )(
      serviceFn(async (): Promise<string> => {
        throw new Error('socket hang up');
      }),
    );
    const error = await svc.call('x', background.withValue(Key, '127.0.0.2:50051')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as UnavailableError).endpoint).toBe('127.0.0.2:50051');
    expect(((error as Error).cause as Error).message).toBe('socket hang up');
  });

  test('leaves successful responses alone and catches synchronous throws of the inner call', async () => {
    let mapped = 0;
    const layer = mapError((err) => {
      mapped++;
      return new UnavailableError('mapped', { cause: err });
    });
    await expect(layer(serviceFn(async (s: string) => s)).call('ok', background)).resolves.toBe('ok');
    expect(mapped).toBe(0);
    const syncThrow = layer<string, string>({
      call() {
        throw new Error('sync');
      },
    });
    await expect(syncThrow.call('x', background)).rejects.toBeInstanceOf(UnavailableError);
    expect(mapped).toBe(1);
  });
});

describe('filter', () => {
  test('a check that throws refuses the call before the inner service', async () => {
    const calls: string[] = [];
    const svc = filter((s: string) => {
      if (s.length === 0) throw new ConfigError('request', 'body', s, 'non-empty');
    })(
      serviceFn(async (s: string) => {
        calls.push(s);
        return s;
      }),
    );
    await expect(svc.call('', background)).rejects.toBeInstanceOf(ConfigError);
    await expect(svc.call('ok', background)).resolves.toBe('ok');
    expect(calls).toEqual(['ok']);
  });

  test('an asynchronous check is awaited, and its rejection refuses the call', async () => {
    let reached = 0;
    const svc = filter(async (n: number, ctx: CallContext) => {
      await Promise.resolve();
      ctx.throwIfAborted();
      if (n < 0) throw new RangeError('negative');
    })(
      serviceFn(async (n: number) => {
        reached++;
        return n;
      }),
    );
    await expect(svc.call(-1, background)).rejects.toBeInstanceOf(RangeError);
    await expect(svc.call(3, background)).resolves.toBe(3);
    await expect(svc.call(3, background.withSignal(AbortSignal.abort()))).rejects.toThrow();
    expect(reached).toBe(1);
  });
});
