"""edgerec.train."""
