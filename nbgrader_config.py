"""nbgrader configuration of the course: solutions/ is the source, exercises/ the release.

Used by the ``nbgrader`` command line and by ``scalinglab release|validate|grade``
(which load this file, so both paths agree).
"""

import os

c = get_config()  # noqa: F821 -- injected by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "why-deep-learning-scales"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
# The exchange (nbgrader's release/collect folder) lives inside the course (git ignores it),
# so `nbgrader list` and friends work without a system-wide /usr/local/share/nbgrader/exchange.
# nbgrader refuses a missing exchange folder, so it is made here when the config is read.
_exchange = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")
os.makedirs(_exchange, exist_ok=True)
c.Exchange.root = _exchange
# Only notebooks belong to an assignment; nbgrader copies any other file of a source
# folder into the release, so make sure stray files never leak.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    "*.md",
    "*.py",
    "*.txt",
    ".*",
]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A submission that never finishes a cell is interrupted; the rest of the notebook still runs.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
c.Execute.raise_on_iopub_timeout = False
