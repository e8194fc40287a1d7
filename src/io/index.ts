// Files: safetensors and sharded HF checkpoints.
export { SafetensorsFile, writeSafetensors, f16ToF32, f32ToF16, type TensorInfo, type WriteOptions, type SaveDType } from './safetensors.js';
export { writeWeights, WeightsReader, parseSize, type WeightsWriteOptions } from './sharded.js';
export { loadModel, loadModelFromDir, readModelConfig, saveModel, copyTokenizerFiles, TOKENIZER_FILES, type LoadModelOptions, type SaveModelOptions } from './model_folder.js';
export { resolveModelRef, cachedSnapshot, type ResolveOptions } from './hub.js';
export { saveAdapter, loadAdapter, readAdapterConfig, resolveAdapterRef, tokenizerDirFor, loadWithAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterRef, type SaveAdapterOptions, type LoadAdapterOptions, type LoadWithAdapterOptions } from './peft.js';
export { ensureWritableDir, fsError, fsErrorCode, withFsErrors } from './writable.js';
export { BUILTINS, BUILTIN_PREFIX, builtinRoot, getBuiltin, listBuiltins, resolveBuiltin, resolveBuiltinDataset, type Builtin, type BuiltinKind, type BuiltinListing } from './builtin.js';
export { readJsonFile } from './json.js';
export { loadDataset, selectSplitFiles, parseCsv, DatasetRows, type DatasetRow, type DatasetPart, type LoadDatasetOptions } from './dataset.js';
export { readUtf8File, decodeUtf8 } from './utf8.js';
