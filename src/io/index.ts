// Files: safetensors and sharded HF checkpoints.
export { SafetensorsFile, writeSafetensors, f16ToF32, f32ToF16, type TensorInfo, type WriteOptions, type SaveDType } from './safetensors.js';
export { writeCheckpoint, CheckpointReader, parseSize, type CheckpointWriteOptions } from './sharded.js';
export { loadModel, loadModelFromDir, readModelConfig, saveModel, type LoadModelOptions, type SaveModelOptions } from './model_folder.js';
export { resolveModelRef, cachedSnapshot, type ResolveOptions } from './hub.js';
export { saveAdapter, loadAdapter, readAdapterConfig, ADAPTER_CONFIG, ADAPTER_WEIGHTS, type SaveAdapterOptions, type LoadAdapterOptions } from './peft.js';
export { BUILTINS, BUILTIN_PREFIX, builtinRoot, getBuiltin, listBuiltins, resolveBuiltin, resolveBuiltinDataset, type Builtin, type BuiltinKind, type BuiltinListing } from './builtin.js';
export { readJsonFile } from './json.js';
export { loadDataset, selectSplitFiles, parseCsv, DatasetRows, type DatasetRow, type DatasetPart, type LoadDatasetOptions } from './dataset.js';
