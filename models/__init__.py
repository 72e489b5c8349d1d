"""Numpy feedforward networks, backward rules and training."""
