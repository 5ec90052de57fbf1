"""edgerec.runtime.sinks."""
