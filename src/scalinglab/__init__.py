"""scalinglab: the shared package of the course *Why Deep Learning Scales*.

Small modules with one job each:

- :mod:`scalinglab.losses` -- softmax, cross-entropy, entropy, KL (chapter 1).
- :mod:`scalinglab.data` -- offline data sources (Markov chains with exact entropy
  rates, MNIST-1D, digits, manifolds, teacher--student, HMMs, modular arithmetic).
- :mod:`scalinglab.models` -- the MLPs and the small decoder-only transformer.
- :mod:`scalinglab.engine` -- the training engine (many small models at once, sweeps, the
  JSON sweep configs behind the shipped records, devices, seeds, FLOPs).
- :mod:`scalinglab.fitting` -- power laws and scaling-law fits.
- :mod:`scalinglab.grading` -- nbgrader release, student checks and safe autograding.
- :mod:`scalinglab.cli`, :mod:`scalinglab.sweep_cli` -- the ``scalinglab`` command line, a thin
  layer over the modules above (which never import it).
"""

#: The course and the package are versioned together, by calendar: YYYY.MM of the release,
#: then .N for corrections within that month (errata: book/errata.md; CHANGELOG.md).
__version__ = "2026.12.2"
