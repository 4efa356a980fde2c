/**
 * `towerChannel` and `towerClientOptions` over one transport, for the
 * suites that run once per transport (`describe.each(TRANSPORTS)`): each
 * channel they make gets `transport` unless its options name one (or are not
 * an object, for the channel to refuse).
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { TowerChannel } from '@grpc-tower/core/grpc';
import type { TestTransport } from '@grpc-tower/testing';
import { type TowerOptions, towerChannel, towerClientOptions } from '../channel.js';

/** The one-call channel's entry points, each making channels over `transport`. */
export interface OverTransport {
  readonly towerChannel: (
    target: string,
    credentials: ChannelCredentials,
    options?: TowerOptions,
  ) => TowerChannel;
  readonly towerClientOptions: (
    target: string,
    credentials: ChannelCredentials,
    options?: TowerOptions,
  ) => { channelOverride: TowerChannel };
}

/** `towerChannel` and `towerClientOptions` with `transport` as the default of their options. */
export function overTransport(transport: TestTransport): OverTransport {
  const withTransport = (options: TowerOptions | undefined): TowerOptions | undefined => {
    if (options === undefined) return { transport };
    const inject = typeof options === 'object' && options !== null && options.transport === undefined;
    return inject ? { ...options, transport } : options;
  };
  return {
    towerChannel: (target, credentials, options) => towerChannel(target, credentials, withTransport(options)),
    towerClientOptions: (target, credentials, options) =>
      towerClientOptions(target, credentials, withTransport(options)),
  };
}
