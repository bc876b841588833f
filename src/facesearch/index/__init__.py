"""Vector indexes: one per model pack, behind the :class:`~facesearch.index.base.VectorIndex` interface."""
