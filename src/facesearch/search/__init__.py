"""Search and verify: probe photo -> faces -> nearest stored faces, with their meaning stated."""
