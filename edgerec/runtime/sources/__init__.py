"""edgerec.runtime.sources."""
