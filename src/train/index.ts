// Public surface of the train layer.
export { AdamW, defaultNoDecay, type AdamWConfig } from './optimizer.js';
export { SCHEDULES, lrLambda, warmupSteps, type ScheduleName, type ScheduleConfig } from './schedule.js';
export { listCheckpoints, saveCheckpoint, openCheckpoint, type TrainerState, type LoadedCheckpoint } from './checkpoint.js';
export { trainLoop, type TrainingConfig, type TrainerHooks, type LogEntry, type LoopCallbacks, type TrainResult } from './loop.js';
export { readMetrics, renderReport, writeReport } from './report.js';
