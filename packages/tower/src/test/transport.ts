/**
 * Runs the channel's behaviour suite over either transport: the suite
 * imports `towerChannel` and `towerClientOptions` from here and runs over
 * grpc-js, and a second test file selects the native transport with
 * {@link useTransport} before importing the suite.
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { TowerChannel } from '@grpc-tower/core/grpc';
import {
  type TowerOptions,
  towerChannel as channel,
  towerClientOptions as clientOptions,
} from '../channel.js';

const KEY = Symbol.for('grpc-tower.test.tower-transport');
type Holder = { [KEY]?: 'grpc-js' | 'native' };

/** Selects the transport of the suites imported after this call (in this test file). */
export function useTransport(transport: 'grpc-js' | 'native'): void {
  (globalThis as Holder)[KEY] = transport;
}

/**
 * `options` with the selected transport (grpc-js unless one was selected:
 * the suite run plainly is the grpc-js one, its `.native` twin the native
 * one), unless they name one (or are not an object, for the channel to refuse).
 */
function withTransport(options: TowerOptions | undefined): TowerOptions | undefined {
  const transport = (globalThis as Holder)[KEY] ?? 'grpc-js';
  if (options === undefined) return { transport };
  const inject = typeof options === 'object' && options !== null && options.transport === undefined;
  return inject ? { ...options, transport } : options;
}

/** `towerChannel`, over the selected transport. */
export function towerChannel(
  target: string,
  credentials: ChannelCredentials,
  options?: TowerOptions,
): TowerChannel {
  return channel(target, credentials, withTransport(options));
}

/** `towerClientOptions`, over the selected transport. */
export function towerClientOptions(
  target: string,
  credentials: ChannelCredentials,
  options?: TowerOptions,
): { channelOverride: TowerChannel } {
  return clientOptions(target, credentials, withTransport(options));
}
