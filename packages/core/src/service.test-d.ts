import { describe, expectTypeOf, test } from 'vitest';
import { type Layer, type Service, ServiceBuilder, mapRequest, mapResponse, serviceFn } from './service.js';
import type { Stack } from './stack.js';

const passThrough =
  () =>
  <Req, Res>(inner: Service<Req, Res>): Service<Req, Res> => ({ call: (r, c) => inner.call(r, c) });

describe('ServiceBuilder types', () => {
  test('generic layers take the types the builder was given', () => {
    const inner = serviceFn(async (s: string) => s.length);
    const svc = new ServiceBuilder<string, number>().layer(passThrough()).layer(passThrough()).service(inner);
    expectTypeOf(svc).toEqualTypeOf<Stack<string, number>>();
  });

  test('type-changing layers compose step by step, first layer outermost', () => {
    const inner = serviceFn(async (n: number) => n * 2);
    // a layer generic in one side gets its other side from a typed binding
    const toText: Layer<string, number, string, string> = mapResponse((n: number) => String(n));
    const parse: Layer<number, number, string, number> = mapRequest((s: string) => Number(s));
    const svc = new ServiceBuilder<string, string>()
      .layer(toText) // outermost: number response -> string
      .layer(parse) // then: string request -> number request
      .service(inner);
    expectTypeOf(svc).toEqualTypeOf<Stack<string, string>>();
  });

  test('an untyped builder learns its outer types from a concrete first layer', () => {
    const first = (inner: Service<number, number>): Service<string, number> => ({
      call: (s, c) => inner.call(Number(s), c),
    });
    const svc = new ServiceBuilder()
      .layer(first)
      .layer(passThrough())
      .service(serviceFn(async (n: number) => n));
    expectTypeOf(svc).toEqualTypeOf<Stack<string, number>>();
  });

  test('a mismatched layer or service does not compile', () => {
    const parse: Layer<number, number, string, number> = mapRequest((s: string) => s.length);
    const b = new ServiceBuilder<string, number>().layer(parse);
    // the next layer must produce Service<number, number>; this one produces Service<boolean, number>
    const wrong = (inner: Service<string, number>): Service<boolean, number> => ({
      call: (flag, c) => inner.call(String(flag), c),
    });
    // @ts-expect-error the layer's outer request type (boolean) is not the inner request type (number)
    b.layer(wrong);
    // @ts-expect-error the service takes string requests, the stack sends numbers
    b.service(serviceFn(async (s: string) => s.length));
    // @ts-expect-error the service returns string responses, the stack needs numbers
    b.service(serviceFn(async (n: number) => String(n)));
    expectTypeOf(b.service(serviceFn(async (n: number) => n))).toEqualTypeOf<Stack<string, number>>();
  });
});
