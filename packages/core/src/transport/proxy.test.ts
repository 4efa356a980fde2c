// Which proxy the environment names, by grpc-js's rules.
import { describe, expect, test } from 'vitest';
import { proxyFor } from './proxy.js';

describe('proxyFor', () => {
  test('grpc_proxy, then https_proxy, then http_proxy; port 80 by default; user info for Basic auth', () => {
    expect(proxyFor('10.0.0.7', {})).toBeUndefined();
    expect(
      proxyFor('10.0.0.7', { http_proxy: 'http://p1:3128', https_proxy: 'http://p2:3129' }),
    ).toMatchObject({
      host: 'p2',
      port: 3129,
      from: 'https_proxy',
    });
    expect(proxyFor('10.0.0.7', { grpc_proxy: 'http://u%40x:pw@p0', http_proxy: 'http://p1:3128' })).toEqual({
      host: 'p0',
      port: 80,
      address: 'p0:80',
      credentials: 'u@x:pw',
      from: 'grpc_proxy',
    });
  });

  test('an https:// or unparsable proxy URL is ignored, as grpc-js ignores it', () => {
    expect(proxyFor('10.0.0.7', { grpc_proxy: 'https://p:443' })).toBeUndefined();
    expect(proxyFor('10.0.0.7', { grpc_proxy: 'not a url' })).toBeUndefined();
  });

  test('no_grpc_proxy (else no_proxy): host suffixes and IPv4 CIDR blocks', () => {
    const env = { grpc_proxy: 'http://p:3128' };
    expect(proxyFor('orders.internal', { ...env, no_proxy: 'example.com, .internal' })).toBeUndefined();
    expect(proxyFor('10.1.2.3', { ...env, no_grpc_proxy: '10.1.0.0/16', no_proxy: '' })).toBeUndefined();
    expect(proxyFor('10.2.2.3', { ...env, no_grpc_proxy: '10.1.0.0/16' })).toMatchObject({ host: 'p' });
    // no_grpc_proxy wins over no_proxy
    expect(
      proxyFor('orders.internal', { ...env, no_grpc_proxy: 'other', no_proxy: 'internal' }),
    ).toMatchObject({
      host: 'p',
    });
  });
});
