/**
 * `@grpc-tower/core/internal`: the helpers that grpc-tower's own packages
 * share (events, option checks, the timer limit, the endpoint test, the
 * insert metadata check, the origin of a failure). Not a public API: it may change in any release.
 *
 * @internal
 * @packageDocumentation
 */
export { EventStream } from './events.js';
export { isEndpoint } from './endpoint.js';
export { checkEndpointMetadata } from './metadata.js';
export { splitHostPort } from '../address.js';
export { MAX_TIMER_MS } from './timers.js';
export { nativeSettings, type NativeSettings } from '../grpc/native/options.js';
export { grpcJsDelivery } from '../grpc/endpoint.js';
export { checkedHttpProtocol } from '../http2/protocol.js';
export {
  failureOrigin,
  deadlineHadFairChance,
  deadlineRuleOptions,
  DEFAULT_DEADLINE_RULE,
  TYPICAL_LATENCY_FLOOR_MS,
  type FailureOrigin,
  type DeadlineRule,
} from './failure.js';
export {
  optionChecks,
  describeRule,
  TIMER_RULE,
  POSITIVE_TIMER_RULE,
  type BackoffValues,
  type OptionChecks,
  type NumberRule,
  type ConfigErrorClass,
} from './options.js';
export {
  discoveryEventsOf,
  discoveryStatusOf,
  type DiscoveryStatusEvent,
} from './discovery.js';
/**
 * The owner of a whole call's deadline and cancellation, for a caller that
 * starts calls itself (the undici dispatcher), and what layers do with a
 * call's context beyond its public members: the deadline notes, one
 * attempt's part of the call, whether its owner settles it on abort.
 */
export {
  CallControl,
  ownedContext,
  noteCall,
  callPart,
  settledOnAbort,
  type CallPhase,
  type CallWhere,
} from '../context/index.js';
export { Grace, graceOf, DEFAULT_CLOSE_GRACE_MS } from './grace.js';
export { stackOf, untrackedCall } from '../stack.js';
/** The per-channel replay budget gRPC A6 gives the request messages a call holds for a retry. */
export { ReplayBudget } from '../grpc/messages.js';
