"""Export the gradebook in Canvas's gradebook CSV import format (an nbgrader ExportPlugin).

Usage (from the course folder)::

    nbgrader export --exporter=scalinglab.grading.canvas.CanvasExportPlugin --to=canvas.csv
    # better: fill in the file Canvas itself exports (Grades > Export), so that every
    # student keeps Canvas's ID and section and each assignment its Canvas column:
    nbgrader export --exporter=scalinglab.grading.canvas.CanvasExportPlugin \\
        --CanvasExportPlugin.roster=canvas-export.csv --to=canvas.csv

then in Canvas: Grades > Import, choose ``canvas.csv``.

The format, as Canvas documents it ("How do I import grades in the Gradebook?",
https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807,
and the file its Gradebook export writes): a header row whose first five columns are
``Student`` (the name, "Last, First"), ``ID`` (Canvas's numeric user id), ``SIS User ID``,
``SIS Login ID`` and ``Section``, then one column per assignment -- ``Name (canvas id)``
for an assignment Canvas knows, a bare name for a new one, which Canvas creates on import.
A second row that starts with ``Points Possible`` gives each assignment's maximum. Canvas
matches each row to a student by one of the identifying columns; here ``SIS Login ID`` is
the nbgrader student id (the login the roster was imported with). The score is nbgrader's
final score: the raw score less the late-submission penalty, as ``nbgrader export`` writes
it; a student who submitted nothing gets 0, as in nbgrader's CSV.
"""

from __future__ import annotations

import csv

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin
from traitlets import Unicode

IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_POSSIBLE = "Points Possible"


def final_score(gradebook: Gradebook, assignment: str, student: str) -> float:
    """nbgrader's exported score: the submission's score less its late penalty, at least 0;
    0 without a submission."""
    try:
        submission = gradebook.find_submission(assignment, student)
    except MissingEntry:
        return 0.0
    return max(0.0, submission.score - (submission.late_submission_penalty or 0.0))


def assignment_column(header: list[str], assignment: str) -> str:
    """The roster's column of ``assignment``: ``NAME (canvas id)`` or ``NAME``, else NAME
    (a new column, which Canvas turns into a new assignment)."""
    for column in header[len(IDENTITY) :]:
        if column == assignment or column.startswith(f"{assignment} ("):
            return column
    return assignment


class CanvasExportPlugin(ExportPlugin):
    """Writes ``--to`` (default ``canvas.csv``) in Canvas's gradebook import format."""

    roster = Unicode(
        "",
        help="a CSV file exported from Canvas's gradebook: its students, IDs, sections and "
        "assignment columns are kept and the nbgrader scores filled in (matched by SIS Login "
        "ID = nbgrader student id); without it the file is built from the gradebook alone",
    ).tag(config=True)

    def export(self, gradebook: Gradebook) -> None:
        dest = self.to or "canvas.csv"
        assignments = [
            a for a in gradebook.assignments if not self.assignment or a.name in self.assignment
        ]
        header, points, rows = self._start(gradebook)
        known = {row["SIS Login ID"] for row in rows}
        for student in gradebook.students:  # in nbgrader but not (yet) in the roster
            if student.id not in known:
                name = ", ".join(n for n in (student.last_name, student.first_name) if n)
                rows.append({**dict.fromkeys(IDENTITY, ""), "Student": name or student.id,
                             "SIS Login ID": student.id})  # fmt: skip
        if self.student:
            rows = [row for row in rows if row["SIS Login ID"] in map(str, self.student)]
        for assignment in assignments:
            column = assignment_column(header, assignment.name)
            if column not in header:
                header.append(column)
            points[column] = f"{assignment.max_score:g}"
            ids = {s.id for s in gradebook.students}
            for row in rows:
                if row["SIS Login ID"] in ids:
                    row[column] = (
                        f"{final_score(gradebook, assignment.name, row['SIS Login ID']):g}"
                    )
        self.log.info("Exporting grades in Canvas's import format to %s", dest)
        with open(dest, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=header, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerow(points)
            writer.writerows(rows)

    def _start(self, gradebook: Gradebook) -> tuple[list[str], dict, list[dict]]:
        """Header, ``Points Possible`` row and student rows: the roster's, or empty ones."""
        points = {"Student": POINTS_POSSIBLE}
        if not self.roster:
            return list(IDENTITY), points, []
        with open(self.roster, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            missing = [c for c in IDENTITY if c not in header]
            if missing:
                raise ValueError(f"{self.roster}: not a Canvas gradebook export (no {missing})")
            rows = []
            for row in reader:
                if row["Student"].strip() == POINTS_POSSIBLE:
                    points = dict(row)
                else:
                    rows.append(dict(row))
        return header, points, rows
