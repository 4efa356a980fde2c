// A seeded random source (mulberry32) for reproducible picks in tests.
export { seededRandom } from '@grpc-tower/testing';
