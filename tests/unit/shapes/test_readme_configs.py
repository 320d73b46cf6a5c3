"""docs/log-shapes.md's example configs are valid: every shape has one, and each passes config and mapping checks."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from alignloop.config import settings_from_dict
from alignloop.shapes import SHAPES, resolve_mapping

LOG_SHAPES = Path(__file__).resolve().parents[3] / "docs" / "log-shapes.md"


def test_the_log_shapes_page_has_a_valid_config_for_every_shape(tmp_path):
    text = LOG_SHAPES.read_text()
    section = text[text.index("# Log shapes"):]
    section = section[: section.index("\n## ", 3)]
    raw = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    settings = settings_from_dict({"target": "t", **raw, "base_model": {"tiny": True}}, base_dir=tmp_path)
    for source in settings.sources:
        resolve_mapping(source.shape, source.mapping, source.name, source.shape_options)
    assert {s.shape for s in settings.sources} == set(SHAPES) - {"events"}
