// Embeddings: safetensors and the BERT encoder.
