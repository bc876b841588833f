"""Pixels to embeddings: image decoding, face detection, alignment, quality and embedding (no storage here)."""
