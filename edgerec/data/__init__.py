"""edgerec.data."""
