/**
 * The address module, where the gRPC endpoint has always imported it from.
 * The code lives in `../address.ts`; see there for the canonical form
 * (RFC 5952).
 *
 * @module
 */
export { type HostPort, formatAddress, grpcTarget, parseAddress } from '../address.js';
