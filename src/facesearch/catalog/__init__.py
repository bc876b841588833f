"""The SQL catalog: collections, images, the files they came from, faces and subjects (no pixels here)."""
