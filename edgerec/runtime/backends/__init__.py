"""edgerec.runtime.backends."""
