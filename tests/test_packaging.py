"""What a user and a citing author find next to the code: licence, citation, changelog, install."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_is_mit_as_pyproject_says():
    text = (ROOT / "LICENSE").read_text()
    assert pyproject()["license"] == "MIT"
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} The biofa developers$", text, re.M)
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_citation_cff_is_valid_and_matches_pyproject():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors"):  # required by CFF 1.2.0
        assert cff.get(key), key
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] == "software"
    assert all(
        isinstance(a, dict) and (a.get("name") or a.get("family-names")) for a in cff["authors"]
    )
    assert cff["authors"] == [{"name": "The biofa developers"}]
    assert cff["version"] == pyproject()["version"]  # a string, not a YAML float
    assert cff["license"] == pyproject()["license"]
    assert set(cff) <= {
        "cff-version",
        "message",
        "type",
        "title",
        "abstract",
        "authors",
        "version",
        "license",
        "keywords",
        "repository-code",
        "url",
        "doi",
        "date-released",
        "preferred-citation",
        "identifiers",
        "references",
    }


def test_changelog_keeps_a_changelog_with_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    assert headings[0] == ("Unreleased", "")
    versions = [v for v, _ in headings[1:]]
    assert pyproject()["version"] in versions
    assert all(date for _, date in headings[1:]), "released versions carry their date"
    sections = set(re.findall(r"^### (\w+)$", text, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_readme_user_install_comes_first_and_names_real_extras():
    readme = (ROOT / "README.md").read_text()
    install = readme.index("## Install\n")
    assert install < readme.index("## A fresh machine: two commands")
    section = readme[install : readme.index("## A fresh machine")]
    assert "pip install biofa " in section
    extras = set(re.findall(r'pip install "biofa\[([a-z,]+)\]"', section))
    named = {e for group in extras for e in group.split(",")}
    assert {"spiking", "vision", "viz"} <= named
    assert named <= set(pyproject()["optional-dependencies"]), named
    assert "(docs/notebooks/)" in section and list((ROOT / "docs" / "notebooks").glob("*.ipynb"))
