export { defineStoreConformance, randomStoreKey } from './conformance.js';
export type { ConformanceClock, StoreConformanceOptions, TestRunner } from './conformance.js';
