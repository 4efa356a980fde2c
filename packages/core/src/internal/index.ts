/**
 * `@grpc-tower/core/internal`: the helpers that grpc-tower's own packages
 * share (events and counters, option checks, the timer limit, the endpoint
 * test). Not a public API: it may change in any release.
 *
 * @internal
 * @packageDocumentation
 */
export { EventStream, Counters } from './events.js';
export { isEndpoint } from './endpoint.js';
export { MAX_TIMER_MS } from './timers.js';
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
