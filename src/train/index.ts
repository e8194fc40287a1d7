// Public surface of the train layer: the optimizer and schedules, the loop and its checkpoints,
// and the pieces every trainer is built from (config args, policy, data, batch sources).
export { AdamW, defaultNoDecay, type AdamWConfig, type ParamGroup } from './optimizer.js';
export { SCHEDULES, lrLambda, warmupSteps, type ScheduleName, type ScheduleConfig } from './schedule.js';
export { listCheckpoints, saveCheckpoint, openCheckpoint, prepareOutputDir, changedSetting, type TrainerState, type LoadedCheckpoint } from './checkpoint.js';
export { trainLoop, type TrainingConfig, type TrainerHooks, type LogEntry, type LoopCallbacks, type TrainResult } from './loop.js';
export { EpochBatches, type BatchSource, type JsonValue } from './batch_source.js';
export { MODEL_ARGS, DATA_ARGS, TRAINING_ARGS, PEFT_ARGS, trainerArgs, loopConfig, type TrainerArgs, type SharedArgs, type ModelArgs, type DataArgs, type TrainingArgs, type PeftArgs } from './args.js';
export { permutation, loadTrainEvalRows, holdOut, epochBatches, type TrainEvalRows } from './data.js';
export { Policy, type PolicyArgs, type LoadPolicyOptions, type ReferenceModel } from './policy.js';
export { startRun, finishRun } from './run.js';
export { readMetrics, renderReport, writeReport } from './report.js';
