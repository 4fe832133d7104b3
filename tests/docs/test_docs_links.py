"""The project's documentation stays inside the repository: every relative link of the READMEs
and of docs/ resolves to a file here (and to a heading of it when it names one), web links go
only to public upstream projects, and no page cites team notes a user does not have."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(p for p in ROOT.glob("*/README.md") if p.parent.name[0] not in "._" and p.parent.name != "build"),
                *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
UPSTREAM = ("https://github.com/tensil-ai/", "https://www.tensil.ai", "https://github.com/brain-bzh/",
            "https://github.com/Xilinx/", "https://www.pynq.io", "https://flower.ai", "https://github.com/adap/")
MD_NAME = re.compile(r"[\w./-]*?([\w-]+\.md)\b")  # a Markdown file a text names
WRITTEN = {"sweep.md", "fedmpq.md"}  # Markdown the project writes into build/ (fl_bridge precision-sweep, fedmpq-compare)
ESCAPE = re.compile(r"(?<![\w.])\.\./[\w./-]+")  # a relative path, checked not to leave the repository
CONTRACT = re.compile(r"contract[- ](\d)")


def tracked_files() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()


def outside_references(text: str, where: Path) -> list[str]:
    """Markdown files the text names that the repository does not have, and relative paths that
    climb out of it: what a user of a clone could not open."""
    ours = {Path(f).name for f in tracked_files()} | WRITTEN
    missing = sorted({m.group(1) for m in MD_NAME.finditer(text)} - ours)
    climbing = [m.group(0) for m in ESCAPE.finditer(text)
                if not (where.parent / m.group(0)).resolve().is_relative_to(ROOT)]
    return missing + climbing


def test_outside_references_are_found(tmp_path) -> None:
    """The check can fail: a note that is not in the repository and a path above it are named."""
    page = ROOT / "docs" / "x.md"
    assert outside_references("see NOTES_NOT_HERE.md and ../../elsewhere/a.txt; README.md is fine", page) == [
        "NOTES_NOT_HERE.md", "../../elsewhere/a.txt"]


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def test_slug_matches_github() -> None:
    assert slug("Report (`<name>.report.json`)") == "report-namereportjson"
    assert slug("2. ONNX and sidecar: `a.onnx` + `a.json`") == "2-onnx-and-sidecar-aonnx--ajson"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository(page: Path) -> None:
    text = page.read_text()
    bad = outside_references(text, page)
    assert not bad, f"{page.relative_to(ROOT)} cites what a clone does not have: {bad}"
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            assert target.startswith(UPSTREAM), f"{page.relative_to(ROOT)}: link leaves the project: {target}"
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.is_relative_to(ROOT) and dest.exists(), f"{page.relative_to(ROOT)}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.relative_to(ROOT)}: no heading #{anchor} in {path or page.name}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.parent.name != "docs"], ids=lambda p: str(p.relative_to(ROOT)))
def test_contracts_are_linked(page: Path) -> None:
    """'contract N' in a README is a link into docs/architecture.md (headings excepted)."""
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            continue
        for m in CONTRACT.finditer(line):
            before = line[max(0, m.start() - 1):m.start()]
            after = line[m.end():m.end() + 2]
            assert before == "[" and after == "](", f"{page.relative_to(ROOT)}: unlinked '{m.group(0)}' in: {line.strip()}"


def test_code_cites_no_team_notes() -> None:
    """Comments and docstrings point to docs/, not to notes that are not in the repository."""
    sources = [ROOT / f for f in tracked_files() if f.endswith((".py", ".tcl", ".toml")) and not f.startswith("docs/")
               and ROOT / f != Path(__file__) and (ROOT / f).is_file()]
    sources.append(ROOT / "Makefile")
    offenders = [f"{p.relative_to(ROOT)}: {bad}" for p in sources if (bad := outside_references(p.read_text(), p))]
    assert not offenders, offenders
