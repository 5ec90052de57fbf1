"""edgerec.export."""
