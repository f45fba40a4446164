"""Late-submission penalties, applied by nbgrader's own machinery.

``nbgrader autograde`` assigns penalties in its ``AssignLatePenalties`` preprocessor: for
each notebook of a submission it resets ``late_submission_penalty``, and if the submission
is late (its ``timestamp`` past the assignment's ``duedate`` in the gradebook, extensions
included: ``SubmittedAssignment.total_seconds_late``) asks the configured
``LateSubmissionPlugin`` for a penalty, clamped to ``[0, notebook score]``. ``scalinglab
grade`` runs that very preprocessor after recording each submission, with the course's
``nbgrader_config.py``, so the configuration nbgrader documents applies unchanged::

    c.LateSubmissionPlugin.penalty_method = "zero"        # or "none" (nbgrader's default)
    c.AssignLatePenalties.plugin_class = "mymodule.MyPenalty"  # a custom plugin

The penalty lands in ``submitted_notebook.late_submission_penalty``, where ``nbgrader
export`` (``score = raw_score - penalty``) and formgrader read it. The due date is set with
``nbgrader db assignment add ASSIGNMENT --duedate="2026-03-01 17:00:00 UTC"``.
"""

from __future__ import annotations

import nbformat
from traitlets.config import Config


def assign_late_penalties(
    config: Config, db_url: str, assignment: str, student: str, notebooks: list[str]
) -> float:
    """Run nbgrader's ``AssignLatePenalties`` on each of ``notebooks`` (their names, without
    ``.ipynb``) of ``student``'s submission of ``assignment`` in the gradebook at ``db_url``;
    return the submission's total penalty (0 when on time or ``penalty_method='none'``)."""
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties

    for notebook in notebooks:
        resources = {
            "nbgrader": {
                "notebook": notebook,
                "assignment": assignment,
                "student": student,
                "db_url": db_url,
            }
        }
        # the notebook's cells play no part in the penalty: nbgrader's preprocessor reads
        # the scores from the gradebook, so an empty notebook stands in for the submission
        AssignLatePenalties(config=config).preprocess(nbformat.v4.new_notebook(), resources)
    with Gradebook(db_url) as gb:
        return float(gb.find_submission(assignment, student).late_submission_penalty or 0.0)
