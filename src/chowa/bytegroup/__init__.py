"""The byte-group model of byGPT-JP: a Llama trunk that reads and predicts 4 bytes per step (specs/byte-model.md).

`hf/` holds the standalone files every saved folder carries (codec, configuration, model, tokenizer,
`custom_generate/`); `model` registers them with transformers and writes folders. Importing this package loads
nothing: the codec and tokenizer work without torch.
"""
