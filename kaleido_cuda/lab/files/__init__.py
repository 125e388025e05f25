"""What the lab writes, and where: the run-folder layout, atomic file writes, PNG grids and the
provenance stamp of every result."""
