/**
 * The grpc-js names the gRPC path uses, in one place. grpc-js is a
 * CommonJS package; these are its public exports.
 *
 * @internal
 * @module
 */
import * as grpc from '@grpc/grpc-js';

export const Channel = grpc.Channel;
export type Channel = grpc.Channel;
export const Metadata = grpc.Metadata;
export type Metadata = grpc.Metadata;
export const ConnectivityState = grpc.connectivityState;
export type ConnectivityState = grpc.connectivityState;
export const Propagate = grpc.propagate;
export type ChannelCredentials = grpc.ChannelCredentials;
export type CallCredentials = grpc.CallCredentials;
export type ChannelOptions = grpc.ChannelOptions;
export type StatusObject = grpc.StatusObject;
export type ChannelInterface = grpc.ChannelInterface;
export type InterceptingListener = grpc.InterceptingListener;
export type ServiceDefinition = grpc.ServiceDefinition;
export type Deadline = grpc.Deadline;
/** The low-level call object a `ChannelInterface` returns from `createCall`. */
export type Call = ReturnType<grpc.ChannelInterface['createCall']>;
/** The server call a client call may inherit its deadline and cancellation from. */
export type ServerSurfaceCall = Parameters<grpc.ChannelInterface['createCall']>[3];
export type MessageContext = Parameters<Call['sendMessageWithContext']>[0];
