// The application's own names that the snippets of docs/guides/migrating.md use
// (its generated client class and service definition, its CA certificate, a
// client it built), declared for every file here, so that each snippet file is
// exactly the code the guide shows, with every import it needs.
import type * as grpc from '@grpc/grpc-js';

declare global {
  const OrdersClient: grpc.ServiceClientConstructor;
  const OrdersService: grpc.ServiceDefinition;
  const caCertificate: Buffer;
  const client: grpc.Client;
}
