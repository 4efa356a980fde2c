// failures keep their gRPC codes; a trailer names the server that failed
import * as grpc from '@grpc/grpc-js';
import { ENDPOINT_METADATA_KEY } from '@grpc-tower/core/grpc'; // a dependency of grpc-tower

export const onError = (err: grpc.ServiceError): void => {
  const server = err.metadata.get(ENDPOINT_METADATA_KEY)[0]; // 'grpc-tower-endpoint'
  console.warn(`${grpc.status[err.code]} from ${server ?? 'no server'}: ${err.details}`);
};
