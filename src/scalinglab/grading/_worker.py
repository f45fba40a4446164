"""Worker process of :func:`scalinglab.grading.autograde` (run with ``python -m``).

Generates the assignment's gradebook (with the hidden tests) into a temporary course
that holds nothing but that gradebook and the submission, then runs ``nbgrader
autograde`` there. The solutions stay in the real course, outside the temporary folder.
Exits non-zero with nbgrader's log on failure.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from scalinglab.grading.course import Course
from scalinglab.grading.release import generate, nbgrader_api


def main(job_json: str) -> int:
    job = json.loads(job_json)
    tmp = Path(job["tmp"])
    assignment, student = job["assignment"], job["student"]
    course = Course(Path(job["course_root"]))
    db = tmp / "gradebook.db"
    generate(course, assignment, tmp / "release", db)
    shutil.rmtree(tmp / "release")  # only the gradebook is needed to grade
    api = nbgrader_api(
        course,
        root=str(tmp),
        source_directory="source",  # absent: no source file is copied next to the submission
        submitted_directory="submitted",
        autograded_directory="autograded",
        db_url=f"sqlite:///{db}",
        cell_timeout=job.get("cell_timeout"),
    )
    result = api.autograde(assignment, student, force=True, create=True)
    if not result["success"]:
        print(result.get("error") or "", result.get("log") or "", sep="\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
