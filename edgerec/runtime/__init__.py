"""edgerec.runtime."""
