/**
 * Subsetting: each client connects to a subset of the servers. See
 * {@link subset} (the discovery operator) and `assign.ts` (the algorithms).
 *
 * @module
 */
export { subset, selectSubset, type SubsetOptions } from './subset.js';
export {
  subsetAssignment,
  rendezvousSubset,
  type SubsetAssignmentOptions,
  type RendezvousSubsetOptions,
} from './assign.js';
