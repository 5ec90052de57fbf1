"""edgerec.devices."""
