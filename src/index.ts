// temper: LLM post-training native to TypeScript. The library entry point.
export * from './tensor/index.js';
export * from './nn/index.js';
export * from './models/index.js';
export * from './io/index.js';
export * from './text/index.js';
export * from './generate/index.js';
export * from './train/index.js';
export * from './algorithms/index.js';
export * from './merge/index.js';
