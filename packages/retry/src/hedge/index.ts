/**
 * Hedged requests with gRPC A6 semantics.
 *
 * @module
 */
export {
  hedge,
  hedgeWith,
  grpcHedgeRules,
  type HedgeRules,
  type HedgeLayer,
  type HedgeService,
  type HedgeEvent,
  type HedgeStats,
  type HedgeEndReason,
} from './layer.js';
export {
  compileHedgePolicy,
  type HedgePolicy,
  type HedgeSettings,
  type CompiledHedgePolicy,
  type ResolvedHedgeSettings,
} from './policy.js';
