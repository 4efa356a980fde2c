/**
 * grpc-js's wording, read in one place: what a status grpc-js made up itself
 * (no response from the server) says of how far an attempt got, and the
 * connection error inside its "no connection" status.
 *
 * @module
 */
import type { Delivery } from '../errors.js';
import { readableTlsError } from '../transport/tls.js';

/**
 * What a status grpc-js made up (no response from the server) says of how
 * far the attempt got, read from grpc-js's wording (1.12 to 1.14), since
 * grpc-js keeps its own account (`NOT_STARTED`, `REFUSED`, `DROP`,
 * `PROCESSED`) from a `Channel`'s caller. The only place that reads its
 * words; `restart` marks a stream grpc-js could not open on the picked
 * connection (`session.request` threw: the connection got a GOAWAY or
 * closed in between), which the attempt opens again itself.
 *
 * - `Failed to start HTTP/2 stream…`, `Getting metadata from plugin
 *   failed…` (call credentials of this process): `not-sent`;
 * - `No connection established…` (connect failed; no stream was opened):
 *   `unconnected`;
 * - `Stream refused by server` (RST_STREAM REFUSED_STREAM, which is also
 *   how a stream beyond a GOAWAY's last stream is refused): `refused`;
 * - `Connection dropped…`, `Received RST_STREAM…`: `lost` (the method may
 *   have run; grpc-js 1.14 also reports a GOAWAY followed by the
 *   connection closing before the stream was accepted this way, so that
 *   takes the safe side);
 * - anything else: not known (`undefined`).
 *
 * A wording a future grpc-js changes falls to `undefined`: such a failure
 * is then never sent again transparently, the safe direction.
 *
 * @internal
 * @example
 * ```ts
 * grpcJsDelivery('Stream refused by server'); // { delivery: 'refused', restart: false }
 * ```
 */
export function grpcJsDelivery(details: string): { delivery: Delivery; restart: boolean } | undefined {
  if (details.startsWith('Failed to start HTTP/2 stream')) return { delivery: 'not-sent', restart: true };
  if (details.startsWith('Getting metadata from plugin failed'))
    return { delivery: 'not-sent', restart: false };
  if (details.startsWith('No connection established')) return { delivery: 'unconnected', restart: false };
  if (details === 'Stream refused by server') return { delivery: 'refused', restart: false };
  if (details.startsWith('Connection dropped') || details.startsWith('Received RST_STREAM')) {
    return { delivery: 'lost', restart: false };
  }
  return undefined;
}

/**
 * The reason inside grpc-js's "no connection" status, such as
 * `connect ECONNREFUSED 127.0.0.9:50051` out of `No connection established.
 * Last error: Error: connect ECONNREFUSED 127.0.0.9:50051. Resolution note: `;
 * the details as they are when they have another shape.
 */
export function connectionErrorOf(details: string): string {
  const marker = 'Last error: ';
  const at = details.indexOf(marker);
  if (at < 0) return details;
  let reason = details.slice(at + marker.length);
  const note = reason.indexOf('. Resolution note:');
  if (note >= 0) reason = reason.slice(0, note);
  if (reason.startsWith('Error: ')) reason = reason.slice('Error: '.length);
  // grpc-js before 1.13 appends the time of the failure: `… (2026-12-02T16:00:00.000Z)`
  reason = reason.replace(/ \(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\)$/, '');
  reason = readableTlsError(reason);
  return reason.length > 0 ? reason : details;
}
