/**
 * The Memento special tokens. A response is
 *   <think> ( <|block_start|> reasoning <|block_end|> <|summary_start|> memento <|summary_end|> )* </think> answer
 * `<think>`/`</think>` already exist in Qwen3's vocabulary; the four block/summary markers are added by us.
 */
export const THINK_START = "<think>";
export const THINK_END = "</think>";
export const BLOCK_START = "<|block_start|>";
export const BLOCK_END = "<|block_end|>";
export const SUMMARY_START = "<|summary_start|>";
export const SUMMARY_END = "<|summary_end|>";

/** The four tokens a Memento model adds to its base vocabulary, in the order their ids are assigned. */
export const MEMENTO_SPECIAL_TOKENS = [BLOCK_START, BLOCK_END, SUMMARY_START, SUMMARY_END] as const;

/** All six format markers. */
export const FORMAT_MARKERS = [THINK_START, THINK_END, ...MEMENTO_SPECIAL_TOKENS] as const;
export type FormatMarker = (typeof FORMAT_MARKERS)[number];

/** ChatML markers used by Qwen-style chat templates. */
export const IM_START = "<|im_start|>";
export const IM_END = "<|im_end|>";
