"""Release, check and grade the course's nbgrader exercises.

- :func:`release` regenerates ``exercises/<assignment>`` from ``solutions/<assignment>``.
- :func:`check_notebook` runs a student's notebook and reports, part by part, which of the
  visible tests pass (the ``scalinglab validate`` command).
- :func:`autograde` grades one submission: the student's code runs in an OS sandbox
  (:mod:`~scalinglab.grading.sandbox`), the verdicts are decided outside it
  (:mod:`~scalinglab.grading.checker`), hidden tests included, under a time limit.
- :func:`grade_submissions` grades many and records the scores in the course gradebook
  (an nbgrader SQLite database) in one transaction per submission.
"""

from scalinglab.grading.autograde import GradeReport, SandboxUnavailable, autograde
from scalinglab.grading.check import PartResult, check_notebook
from scalinglab.grading.course import (
    Course,
    find_course_root,
    release_notebook_path,
    source_notebook_path,
)
from scalinglab.grading.gradebook import grade_submissions
from scalinglab.grading.notebooks import find_leaks, graded_parts, with_solution_replaced
from scalinglab.grading.release import release

__all__ = [
    "Course",
    "GradeReport",
    "PartResult",
    "SandboxUnavailable",
    "autograde",
    "check_notebook",
    "find_course_root",
    "find_leaks",
    "grade_submissions",
    "graded_parts",
    "release",
    "release_notebook_path",
    "source_notebook_path",
    "with_solution_replaced",
]
