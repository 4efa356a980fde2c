import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EchoClient, type EchoReply, EchoRequest } from './gen/echo.js';
import { GeneratedEchoClient } from './index.js';
import { pickHosts } from './leaks.js';
import { type EchoServer, encodeRpcStatus, startEchoServer } from './server.js';
import { callbackOutcome, streamOutcome } from './test-helpers.js';

const req = (fields: Partial<EchoRequest>): EchoRequest => EchoRequest.fromPartial(fields);

describe('startEchoServer, ts-proto generated client', () => {
  let server: EchoServer;
  let client: EchoClient;

  beforeAll(async () => {
    const [host] = pickHosts(1);
    server = await startEchoServer({ host: host!, name: 'gen' });
    client = new GeneratedEchoClient(server.address, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client.close();
    await server.stop(1000);
  });

  it('is the generated client', () => {
    expect(GeneratedEchoClient).toBe(EchoClient);
    expect(GeneratedEchoClient.serviceName).toBe('grpctower.testing.Echo');
  });

  it('makes a unary call', async () => {
    const out = await callbackOutcome<EchoReply>((cb) =>
      client.unary(req({ message: 'hi', payload: Buffer.from('p') }), cb),
    );
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies[0]).toMatchObject({ message: 'hi', server: 'gen' });
    expect(out.replies[0]!.payload.toString()).toBe('p');
  });

  it('reads a server stream', async () => {
    const out = await streamOutcome(client.serverStream(req({ message: 'x', count: 3 })));
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies.map((r) => r.index)).toEqual([0, 1, 2]);
  });

  it('writes a client stream', async () => {
    const out = await callbackOutcome<EchoReply>((cb) => {
      const call = client.clientStream(cb);
      call.write(req({ message: 'a' }));
      call.write(req({ message: 'b' }));
      call.end();
      return call;
    });
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies[0]).toMatchObject({ message: 'a,b', received: 2 });
  });

  it('runs a bidi stream', async () => {
    const call = client.bidi();
    const outcome = streamOutcome(call);
    call.write(req({ message: 'p' }));
    call.write(req({ message: 'q' }));
    call.end();
    const out = await outcome;
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.replies.map((r) => [r.message, r.index])).toEqual([
      ['p', 0],
      ['q', 1],
    ]);
  });

  it('sees failures with their status details', async () => {
    const out = await callbackOutcome<EchoReply>((cb) =>
      client.unary(req({ failCode: grpc.status.PERMISSION_DENIED, failDetails: 'no' }), cb),
    );
    expect(out.error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(out.error?.details).toBe('no');
    const bin = out.status.metadata.get('grpc-status-details-bin')[0];
    expect(Buffer.isBuffer(bin) && bin.equals(encodeRpcStatus(grpc.status.PERMISSION_DENIED, 'no'))).toBe(
      true,
    );
  });
});
