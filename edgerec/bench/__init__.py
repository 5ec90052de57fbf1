"""edgerec.bench."""
