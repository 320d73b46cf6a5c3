"""The docs are current and whole: the generated config reference, every relative link, the README's promises."""

from __future__ import annotations

import re
from pathlib import Path

import typer
import yaml

from alignloop import config_reference
from alignloop.cli.main import app
from alignloop.config import settings_from_dict

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation but - and _ dropped, spaces -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            slug = _slug(match.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [a or b for a, b in LINK.findall(text)]


def test_the_config_reference_is_generated_from_the_current_settings():
    assert (DOCS / "config.md").read_text() == config_reference.render(), "docs/config.md is stale: run `make docs`"


def test_every_setting_has_a_description():
    assert config_reference.undocumented() == [], "add Field(description=...) in pipeline/config.py"


def test_keys_the_planner_decides_say_so_in_the_reference():
    rows, section = {}, ""
    for line in config_reference.render().splitlines():
        section = line.strip("# `") if line.startswith("## ") else section
        if line.startswith("| `"):
            rows[f"{section}.{line.split('|')[1].strip(' `')}"] = line
    for key in ("max_steps", "per_device_batch_size", "beta", "max_length", "method"):
        assert "planner decides" in rows[f"training.{key}"], key
    assert "planner decides" not in rows["training.learning_rate"]
    assert "planner decides" not in rows["evaluation.max_length"]


def test_every_relative_link_in_the_docs_resolves_to_a_file_and_its_heading():
    broken = []
    for page in PAGES:
        for link in _links(page):
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.name}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{page.name}: {link} (no such heading)")
    assert broken == []


def test_the_link_check_sees_a_broken_file_and_a_broken_anchor(tmp_path):
    page = tmp_path / "a.md"
    page.write_text("# Top `x`\n\n[ok](#top-x) [gone](b.md) [bad](#nowhere)\n```\n[fenced](c.md)\n```\n")
    assert _links(page) == ["#top-x", "b.md", "#nowhere"]
    assert _anchors(page) == {"top-x"}


def test_the_docs_have_at_least_five_pages_and_the_readme_links_each():
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    readme_links = {Path(link.partition("#")[0]).name for link in _links(ROOT / "README.md")}
    assert len(pages) >= 5
    assert set(pages) <= readme_links, set(pages) - readme_links


def test_the_readme_is_short_with_the_two_commands_first_and_your_data_and_scheduling_in_its_first_half():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    first_block = "\n".join(lines[: next(i for i, line in enumerate(lines) if line.startswith("## "))])
    assert "make demo" in first_block and "make test" in first_block
    headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
    for title in ("Your data", "Schedule it"):
        at = next(i for i in headings if lines[i].startswith(f"## {title}"))
        assert at < len(lines) / 2, title
    assert len((ROOT / "BENCHMARKS.md").read_text().splitlines()) <= 250


def _readme_section_yaml(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"## {title}"):]
    section = section[: section.index("\n## ", 3)]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_the_readme_config_is_valid_and_sets_nothing_the_planner_decides(tmp_path, monkeypatch):
    monkeypatch.setenv("PG_PASSWORD", "x")
    text = _readme_section_yaml("Your data")
    assert len(text.strip().splitlines()) <= 12
    raw = yaml.safe_load(text)
    settings = settings_from_dict(raw, base_dir=tmp_path)
    assert set(raw) <= {"target", "sources", "base_model"}, "training, planning and evaluation are the planner's"
    assert settings.training.max_steps is None and settings.evaluation.max_examples is None


def test_the_readme_cli_table_names_every_command_of_the_cli():
    commands = set(typer.main.get_command(app).commands)
    section = (ROOT / "README.md").read_text().split("## The CLI", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `alignloop ([a-z-]+)", section, re.M))
    assert listed == commands
