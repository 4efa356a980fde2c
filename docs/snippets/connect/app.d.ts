// The application's own names that the snippets of docs/guides/connect-es.md use
// (its protoc-gen-es service descriptor and its CA certificate), declared for
// every file here, so that each snippet file is exactly the code the guide shows.
import type { Message } from '@bufbuild/protobuf';
import type { GenMessage, GenService } from '@bufbuild/protobuf/codegenv2';

type GetOrderRequest = Message<'shop.GetOrderRequest'> & { id: number };
type Order = Message<'shop.Order'> & { id: number; item: string };

declare global {
  const OrderService: GenService<{
    getOrder: { methodKind: 'unary'; input: GenMessage<GetOrderRequest>; output: GenMessage<Order> };
  }>;
  const caCertificate: Buffer;
}
