"""Where the course lives on disk and how nbgrader is configured for it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

CONFIG_FILE = "nbgrader_config.py"


def find_course_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``nbgrader_config.py``: ``$SCALINGLAB_COURSE_ROOT`` if set, else
    the first such folder at or above ``start`` (default: the working directory), else the
    checkout this package was installed from (an editable install)."""
    env = os.environ.get("SCALINGLAB_COURSE_ROOT")
    candidates = [Path(env)] if env else []
    here = Path(start or Path.cwd()).resolve()
    candidates += [here, *here.parents]
    candidates.append(Path(__file__).resolve().parents[3])
    for folder in candidates:
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise FileNotFoundError(
        f"no {CONFIG_FILE} found at or above {here}; run from the course checkout "
        "or set SCALINGLAB_COURSE_ROOT"
    )


@dataclass(frozen=True)
class Course:
    """The course folder and its nbgrader configuration."""

    root: Path

    @classmethod
    def locate(cls, start: str | os.PathLike | None = None) -> Course:
        return cls(find_course_root(start))

    def config(self) -> Config:
        """``nbgrader_config.py`` loaded as a traitlets :class:`Config`."""
        return PyFileConfigLoader(CONFIG_FILE, path=str(self.root)).load_config()

    @cached_property
    def _folders(self) -> tuple[str, str]:
        """Source and release folder names, read from the config file once per Course."""
        course_directory = self.config().CourseDirectory
        return course_directory.source_directory, course_directory.release_directory

    @property
    def source_dir(self) -> Path:
        return self.root / self._folders[0]

    @property
    def release_dir(self) -> Path:
        return self.root / self._folders[1]

    def assignments(self) -> list[str]:
        """Every assignment: the sub-folders of the source directory, sorted."""
        return sorted(
            p.name for p in self.source_dir.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))
        )

    def check_assignment(self, assignment: str) -> str:
        known = self.assignments()
        if assignment not in known:
            raise ValueError(f"unknown assignment {assignment!r}; known: {', '.join(known)}")
        return assignment


def source_notebook_path(assignment: str, course: Course | None = None) -> Path:
    """The nbgrader source (solution) notebook of a single-notebook assignment."""
    course = course or Course.locate()
    return _single_notebook(course.source_dir / course.check_assignment(assignment))


def release_notebook_path(assignment: str, course: Course | None = None) -> Path:
    """The released (student) notebook of a single-notebook assignment."""
    course = course or Course.locate()
    return _single_notebook(course.release_dir / course.check_assignment(assignment))


def _single_notebook(folder: Path) -> Path:
    notebooks = sorted(folder.glob("*.ipynb"))
    if len(notebooks) != 1:
        raise ValueError(f"expected exactly one notebook in {folder}, found {len(notebooks)}")
    return notebooks[0]
