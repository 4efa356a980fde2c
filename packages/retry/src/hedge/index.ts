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
} from './layer.js';
export type { HedgeEvent, HedgeStats, HedgeEndReason } from './events.js';
export {
  compileHedgePolicy,
  type HedgePolicy,
  type HedgeSettings,
  type CompiledHedgePolicy,
  type ResolvedHedgeSettings,
} from './policy.js';
