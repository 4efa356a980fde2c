/**
 * The per-call context in its parts: keys (`key.ts`), the context itself
 * (`call-context.ts`), the one deadline owner (`control.ts`), scopes
 * (`scope.ts`) and signal helpers (`signal.ts`). The public names go out
 * through the package's index; the layer hooks through `./internal`.
 *
 * @module
 */
export { contextKey, type ContextKey } from './key.js';
export {
  CallContext,
  background,
  ownedContext,
  noteCall,
  lowerDeadline,
  callPart,
  settledOnAbort,
  derivedContext,
} from './call-context.js';
export { CallControl, type CallPhase, type CallWhere, type OnDeadline } from './control.js';
export { newContext, withDeadline, withTimeout, linkedScope, type Scope } from './scope.js';
export { abortReason, sleep, raceSignal } from './signal.js';
