/**
 * The gRPC transports a behaviour suite runs over, for `describe.each`:
 * the native one (the default of `grpcEndpoint` and `towerChannel`) and
 * the grpc-js one (`transport: 'grpc-js'`). A suite whose behaviour is meant
 * to be the same on both runs once per transport, passing the name as the
 * `transport` option of what it builds.
 *
 * @module
 */

/**
 * The transports' names, as the `transport` option spells them.
 *
 * @example
 * ```ts
 * describe.each(TRANSPORTS)('over the %s transport', (transport) => {
 *   test('unary', async () => {
 *     const ep = grpcEndpoint(server.address, { credentials: insecure, transport });
 *   });
 * });
 * ```
 */
export const TRANSPORTS = ['native', 'grpc-js'] as const;

/**
 * One of {@link TRANSPORTS}.
 *
 * @example
 * ```ts
 * const transport: TestTransport = 'grpc-js';
 * ```
 */
export type TestTransport = (typeof TRANSPORTS)[number];
