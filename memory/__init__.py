"""Cultural memory: Chroma stores, embeddings, ingestion, scorers and selection."""
