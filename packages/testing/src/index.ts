/**
 * Test support for grpc-tower: an echo gRPC service (`proto/echo.proto`)
 * with all four call types, servers for it in this process or in a child
 * process (which can be killed, paused and resumed like a real server),
 * the ts-proto generated client, and leak checks over Node's active
 * resources.
 *
 * @example
 * ```ts
 * import { createEchoClient, pickHosts, startEchoServer } from '@grpc-tower/testing';
 *
 * const [host] = pickHosts(1);
 * const server = await startEchoServer({ host });
 * const client = createEchoClient(server.address);
 * ```
 * @module
 */
export { insecure } from './credentials.js';
export {
  type InteropPackage,
  type InteropServer,
  loadInteropPackage,
  startCcoreInteropServer,
  startInteropServer,
} from './interop.js';
export { seededRandom } from './random.js';
export {
  createEchoClient,
  ECHO_PROTO_PATH,
  ECHO_SERVICE_NAME,
  type EchoMethod,
  type EchoPackage,
  type EchoProtoClient,
  type EchoReply,
  type EchoRequest,
  loadEchoPackage,
} from './echo.js';
export {
  /** The ts-proto generated echo client (`src/gen/echo.ts`). */
  EchoClient as GeneratedEchoClient,
  /** The ts-proto generated reply message: its type and its encode/decode/fromPartial functions. */
  EchoReply as GeneratedEchoReply,
  /** The ts-proto generated request message: its type and its encode/decode/fromPartial functions. */
  EchoRequest as GeneratedEchoRequest,
  /** The ts-proto generated service definition, with ts-proto's (de)serializers. */
  EchoService as GeneratedEchoService,
} from './gen/echo.js';
export {
  activeHandles,
  expectNoLeaks,
  type HandleCounts,
  type LeakCheckOptions,
  loopbackAddress,
  pickHosts,
  type ResourceTracker,
  trackResources,
} from './leaks.js';
export { selfSigned } from './certs.js';
export { closedPort } from './ports.js';
export { type TestTransport, TRANSPORTS } from './transports.js';
export {
  type EchoCallCounts,
  type EchoServer,
  type EchoServerOptions,
  encodeRpcStatus,
  type ServingStatus,
  startEchoServer,
  startPods,
} from './server.js';
export {
  type ChildEchoServer,
  type ChildEchoServerOptions,
  type ChildExit,
  spawnEchoServer,
} from './child.js';
