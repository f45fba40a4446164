"""The training engine: the machinery behind every chapter's experiments.

- :mod:`~scalinglab.engine.ensemble` -- many small MLPs trained at once as one batched model.
- :mod:`~scalinglab.engine.training` -- batches, optimizers and the single-model training loops.
- :mod:`~scalinglab.engine.sweep` -- a grid of models grouped into batched passes, tidy records.
- :mod:`~scalinglab.engine.sweep_config` -- the JSON configs behind the shipped records.
- :mod:`~scalinglab.engine.shards` -- a sweep split into N shards of whole groups, balanced
  by FLOPs; merging and checking the shards' records.
- :mod:`~scalinglab.engine.cluster` -- the shards as one Slurm job array (submitit, an
  optional dependency), or local processes; waiting, resubmitting, merging.
- :mod:`~scalinglab.engine.device`, :mod:`~scalinglab.engine.seeding` -- CUDA/MPS/CPU and bf16
  autocast; seeds for every random generator.
- :mod:`~scalinglab.engine.flops` -- training FLOPs of the models, checked against
  ``FlopCounterMode``.

The chapters' topic modules (``scalinglab.resolution``, ``scalinglab.mup``, ...) sit one level
up, one per idea; only the command line (``scalinglab.cli``, ``scalinglab.sweep_cli``)
parses arguments.
"""
