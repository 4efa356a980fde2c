import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import type { Change } from '@grpc-tower/core';
import { type NativeGrpcEndpoint, grpcEndpoint } from '@grpc-tower/core/grpc';
import { Subject } from 'rxjs';

// before: grpcEndpoint('10.0.0.7:50051', { credentials, weight: 3, zone: 'eu-west-1a' })
// now: the endpoint is made from the address; weight, zone and hints go on its insert
const discover = new Subject<Change<string, NativeGrpcEndpoint>>();
const balancer = p2c(discover, { target: 'orders', zones: { local: 'eu-west-1a' } });
discover.next({
  type: 'insert',
  key: '10.0.0.7:50051',
  endpoint: grpcEndpoint('10.0.0.7:50051', { credentials: grpc.credentials.createInsecure() }),
  metadata: { weight: 3, zone: 'eu-west-1a', forZones: ['eu-west-1a'] },
});
export { balancer };
