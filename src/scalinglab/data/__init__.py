"""Offline data sources. Import from the submodules, e.g. ``scalinglab.data.markov``."""
