"""Training targets, one module per method."""
