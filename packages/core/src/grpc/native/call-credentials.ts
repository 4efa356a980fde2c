/**
 * Call credentials on the native transport: the per-call ones a call
 * carries (`CallOptions.credentials`) composed after those of the channel
 * credentials (`createSsl(...).compose(callCredentials)`), asked for their
 * metadata before each attempt opens its stream, as grpc-js does. grpc-js
 * keeps a channel credential's call credentials behind internal members
 * that changed between releases (`_getCallCredentials()` in 1.12, the
 * secure connector's `getCallCredentials()` from 1.13 on).
 *
 * @internal
 * @module
 */
import type * as http2 from 'node:http2';
import { Status, type StatusCode } from '../../status.js';
import type { CallCredentials, ChannelCredentials, Metadata } from '../grpc-js.js';

interface CredentialInternals {
  _getCallCredentials?: () => CallCredentials;
  _createSecureConnector?: (
    target: { scheme?: string; path: string },
    options: Record<string, unknown>,
  ) => { getCallCredentials(): CallCredentials; destroy(): void };
}

/** grpc-js's call credentials that add nothing. */
const isEmpty = (creds: CallCredentials): boolean => creds.constructor.name === 'EmptyCallCredentials';

/** The call credentials composed into `creds`, or `undefined` when there are none. */
export function channelCallCredentials(creds: ChannelCredentials): CallCredentials | undefined {
  const internals = creds as unknown as CredentialInternals;
  let call: CallCredentials | undefined;
  if (typeof internals._getCallCredentials === 'function') {
    call = internals._getCallCredentials();
  } else if (typeof internals._createSecureConnector === 'function') {
    const connector = internals._createSecureConnector({ scheme: 'dns', path: 'localhost' }, {});
    call = connector.getCallCredentials();
    connector.destroy();
  }
  return call === undefined || isEmpty(call) ? undefined : call;
}

/** The credentials a call uses: the channel's, then the call's own. */
export function callCredentialsOf(
  channel: CallCredentials | undefined,
  call: CallCredentials | undefined,
): CallCredentials | undefined {
  if (call === undefined) return channel;
  return channel === undefined ? call : channel.compose(call);
}

/**
 * Asks `creds` for the metadata of a call of `method` to `authority` and
 * adds it to `headers`; resolves with the failure's status (in grpc-js's
 * words) instead when the credentials fail.
 */
export async function addCallMetadata(
  creds: CallCredentials,
  authority: string,
  method: string,
  headers: http2.OutgoingHttpHeaders,
): Promise<{ code: StatusCode; details: string } | undefined> {
  let metadata: Metadata;
  try {
    metadata = await creds.generateMetadata({
      method_name: method,
      service_url: serviceUrl(authority, method),
    });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return {
      code: typeof code === 'number' && code > 0 && code <= 16 ? (code as StatusCode) : Status.UNAVAILABLE,
      details: `Getting metadata from plugin failed with error: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  Object.assign(headers, metadata.toHttp2Headers());
  return undefined;
}

/** `https://<host>/<service>`, the URL call credentials are told (as grpc-js computes it). */
function serviceUrl(authority: string, method: string): string {
  const host = authority.startsWith('[')
    ? authority.slice(0, authority.indexOf(']') + 1)
    : authority.split(':')[0];
  const service = method.split('/')[1] ?? '';
  return `https://${host}/${service}`;
}
