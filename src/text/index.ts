// Text: Hugging Face tokenizers and chat templates.
export { Tokenizer, type EncodeOptions, type DecodeOptions } from './tokenizer.js';
export {
  renderChatTemplate,
  applyChatTemplate,
  renderChat,
  templateEndOfTurn,
  strftime,
  type ChatMessage,
  type ChatContentPart,
  type ToolSchema,
  type RenderChatTemplateOptions,
  type ApplyChatTemplateOptions,
  type ChatEncoding,
} from './chat_template.js';
export { tokenizeExample, tokenizeDataset, detectSftFormat, type SftRowFormat, type SftDataOptions, type TokenizedExample, type TokenizeDatasetOptions, type TokenizedDataset } from './sft_data.js';
export { packBestFitDecreasing, assemblePacked, assemblePaddingFree, assemblePadded, type PackedBatch, type PaddedBatch } from './packing.js';
