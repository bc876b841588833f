"""Accuracy evaluation: verification and open-set identification metrics, and the LFW benchmark protocols."""
