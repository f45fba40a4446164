"""Models of the training engine. Import from the submodules, e.g. ``scalinglab.models.mlp``."""
