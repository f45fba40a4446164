"""One version for the course and the package, a valid citation file, licences, changelog."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

import scalinglab

ROOT = Path(__file__).resolve().parents[1]
VERSION = scalinglab.__version__


def test_version_is_a_calendar_version_with_one_source():
    assert re.fullmatch(r"20\d\d\.(1[0-2]|[1-9])(\.\d+)?", VERSION), VERSION
    # (tomllib is Python >= 3.11; the course supports 3.10, so read the two lines directly)
    pyproject = (ROOT / "pyproject.toml").read_text()
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.M), "a second version in pyproject"
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M)
    assert re.search(r'^version = \{ attr = "scalinglab.__version__" \}', pyproject, re.M)


def test_citation_file_is_valid_cff_and_names_this_version():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    # the Citation File Format's own JSON schema, version 1.2.0, as cffconvert 2.0.0 ships it
    schema = json.loads((ROOT / "tests" / "data" / "citation-cff-1.2.0.schema.json").read_text())
    # YAML reads an unquoted date as a date: the schema wants the ISO string
    citation = json.loads(json.dumps(citation, default=str))
    jsonschema.validate(citation, schema)
    assert citation["version"] == VERSION
    assert set(citation["license"]) == {"MIT", "CC-BY-4.0"}


def test_changelog_and_licences():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[([^\]]+)\]", changelog, re.M)
    assert releases[0] == "Unreleased" and releases[1] == VERSION, releases[:2]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    content = (ROOT / "LICENSE-CONTENT").read_text()
    assert "Creative Commons Attribution 4.0 International" in content
    readme = (ROOT / "README.md").read_text()
    assert "CC BY 4.0" in readme and "MIT" in readme
    preface = (ROOT / "book" / "preface.md").read_text()
    assert "CC BY 4.0" in preface and "MIT" in preface


def test_book_footer_shows_the_version():
    """The local Sphinx extension writes the version into every page's footer."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_book", ROOT / "_ext" / "course_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Config:
        html_theme_options = {"other": 1}

    config = Config()
    module._version_footer(None, config)
    assert config.release == config.version == VERSION
    assert f"version {VERSION}" in config.html_theme_options["extra_footer"]
    assert config.html_theme_options["other"] == 1
