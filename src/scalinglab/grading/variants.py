"""Per-student variants: each student answers for their own numbers, which the grader
recomputes from the id of the submission it grades.

A part with a numeric answer (a predicted peak position, a threshold, a fitted value) draws
its parameters from

    seed = SHA-256(VARIANT_KEY ‖ "variant" ‖ assignment ‖ student id)

(:func:`scalinglab.grading.hidden.derive_seed`). The student enters their id in the
notebook (``STUDENT_ID``); a locked cell shows them their variant. At grading time the
hidden half of the part's test checks that id against the id the submission is graded
under (:func:`graded_student`) and the visible half compares the answer with the one for
that variant. So a student who copies a classmate's answers scores 0 on those parts: with
the classmate's id the id check fails, with their own id the numbers are someone else's.

Why the variant key is public (``VARIANT_KEY``) and distinct from the instructor's
hidden-test secret: the student's own notebook must compute the variant, and everything
the notebook computes the student can read. A secret key would have to be handed to every
student, and it would protect nothing anyway: a student who wants a classmate's numbers
can ask the classmate. What makes copying fail is that answers differ between ids and that
the grader knows which id it grades, not that the mapping is unknown. The hidden-test
secret stays with the grader alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from scalinglab.grading.hidden import derive_seed

#: public by design (see the module docstring); a course may change it to draw new variants
VARIANT_KEY = "scalinglab-variants-v1"
#: the id a self-study learner keeps; the solution notebooks use it too
SELF_STUDY = "self-study"
#: set by the grader for the process that runs the tests (never for the student's process)
GRADED_STUDENT_ENV = "SCALINGLAB_GRADED_STUDENT"


def variant_rng(assignment: str, student_id: str) -> np.random.Generator:
    """The generator of ``student_id``'s variant of ``assignment``."""
    return np.random.default_rng(
        derive_seed("variant", assignment, str(student_id), secret=VARIANT_KEY)
    )


def student_variant(assignment: str, student_id: str, **choices: Sequence) -> dict:
    """One value of each keyword's choices for ``student_id``: e.g.
    ``student_variant(A, "alice", n_train=(40, 48, 56), outputs=(2, 3, 4))``. The same id
    always gets the same values; the order of the keywords matters (keep it fixed)."""
    if not isinstance(student_id, str) or not student_id.strip():
        raise ValueError("STUDENT_ID must be your course login as a non-empty string")
    rng = variant_rng(assignment, student_id.strip())
    picked = {}
    for name, options in choices.items():
        value = options[int(rng.integers(len(options)))]
        picked[name] = value.item() if hasattr(value, "item") else value
    return picked


def graded_student(default: str) -> str:
    """The id the submission is being graded under, in the grader's process; ``default``
    (the notebook's own ``STUDENT_ID``) anywhere else (a student's kernel, ``validate``)."""
    return os.environ.get(GRADED_STUDENT_ENV) or default


def check_student_id(student_id) -> None:
    """Assert (in a hidden test) that the notebook's ``STUDENT_ID`` is the id it is graded
    under: a copied notebook that kept its author's id fails here."""
    expected = graded_student(student_id)
    assert student_id == expected, "STUDENT_ID is not the id this submission is graded under"
