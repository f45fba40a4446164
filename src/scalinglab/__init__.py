"""scalinglab: the shared package of the course *Why Deep Learning Scales*.

Small modules with one job each:

- :mod:`scalinglab.losses` -- softmax, cross-entropy, entropy, KL (chapter 1).
- :mod:`scalinglab.data` -- offline data sources (Markov chains with exact entropy
  rates, MNIST-1D, digits, manifolds, teacher--student, HMMs, modular arithmetic).
- :mod:`scalinglab.models`, :mod:`scalinglab.ensemble`, :mod:`scalinglab.sweep` --
  the training engine (many small models at once).
- :mod:`scalinglab.fitting` -- power laws and scaling-law fits.
- :mod:`scalinglab.grading` -- nbgrader release, student checks and safe autograding.
"""

__version__ = "0.1.0"
