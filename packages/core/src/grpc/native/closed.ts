/**
 * What a native attempt's stream that closed without a gRPC status means:
 * the status the call ends with, and whether the request reached the
 * server (its `Delivery`), from the stream's reset code, the response
 * headers it got and what its session saw (a GOAWAY, a lost connection).
 *
 * @internal
 * @module
 */
import type * as http2 from 'node:http2';
import type { Delivery } from '../../errors.js';
import { Status } from '../../status.js';
import type { SessionInfo } from '../../transport/connection.js';
import { Metadata, type StatusObject } from '../grpc-js.js';
import { statusOfReset } from './wire.js';

/** The end of a stream that closed without a gRPC status, and how far its request got. */
export interface ClosedStream {
  readonly status: StatusObject;
  readonly delivery: Delivery;
}

/** REFUSED_STREAM: the server did not process the stream. */
const REFUSED_STREAM = 7;

/**
 * The end of `stream`, opened on `session`, which closed without a status;
 * `answered` when its response headers had come; `lastError` the
 * endpoint's, named when the connection was lost.
 */
export function closedStream(
  stream: http2.ClientHttp2Stream,
  session: SessionInfo,
  answered: boolean,
  lastError: string | undefined,
): ClosedStream {
  const id = stream.id ?? 0;
  const beyondGoaway = session.goawayLastStreamId !== undefined && id > session.goawayLastStreamId;
  const rst = stream.rstCode;
  if (rst === REFUSED_STREAM && !answered) {
    return {
      status: { ...statusOfReset(rst), metadata: new Metadata() },
      delivery: beyondGoaway ? 'goaway' : 'refused',
    };
  }
  if (!answered && beyondGoaway) {
    return {
      status: {
        code: Status.UNAVAILABLE,
        details: 'the server went away (GOAWAY) before accepting the stream',
        metadata: new Metadata(),
      },
      delivery: 'goaway',
    };
  }
  if (session.lost) {
    // the connection ended under an accepted stream: it may have run
    return {
      status: {
        code: Status.UNAVAILABLE,
        details: `Connection dropped${lastError === undefined ? '' : ` (${lastError})`}`,
        metadata: new Metadata(),
      },
      delivery: 'lost',
    };
  }
  // the peer reset an accepted stream without a status: it may have run
  return { status: { ...statusOfReset(rst), metadata: new Metadata() }, delivery: 'lost' };
}
