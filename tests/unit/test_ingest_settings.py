"""Ingest settings parse as documented, and the ingest command does not load the training stack."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from alignloop.config import settings_from_dict
from alignloop.errors import ConfigError

BASE = {"target": "t", "base_model": {"tiny": True}, "sources": [{"name": "prod"}]}


def test_ingest_settings_read_iso_durations(tmp_path):
    s = settings_from_dict({**BASE, "ingest": {"lookback": "P2D", "pending_timeout": 3600, "max_rows_per_user": 50}},
                           base_dir=tmp_path)
    assert (s.ingest.lookback, s.ingest.pending_timeout, s.ingest.max_rows_per_user) == (
        timedelta(days=2), timedelta(hours=1), 50)
    assert (s.ingest.future_skew, s.ingest.max_bad_share, s.ingest.scrub_pii) == (timedelta(minutes=5), 0.2, True)


@pytest.mark.parametrize(("ingest", "field"), [
    ({"max_bad_share": 1.5}, "ingest.max_bad_share"),
    ({"memory_limit": "lots"}, "ingest.memory_limit"),
    ({"lookbak": "P1D"}, "ingest.lookbak: unknown key"),
])
def test_bad_ingest_setting_names_the_field(tmp_path, ingest, field):
    with pytest.raises(ConfigError, match=field):
        settings_from_dict({**BASE, "ingest": ingest}, base_dir=tmp_path)


def test_ingest_imports_neither_torch_nor_datasets():
    code = ("import sys; import alignloop.cli.main; from pipeline import stages; import alignloop.cli.quarantine; "
            "print(sorted(m for m in ('torch', 'datasets', 'transformers', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_holdout_flags_match_is_holdout_for_every_prompt():
    import pyarrow as pa

    from alignloop.schema import CONVERSATION, holdout_flags, is_holdout

    prompts = [[{"role": "user", "content": f"question {i} é/\"\\\n\x1f"}] for i in range(200)]
    prompts += [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], []]
    column = pa.chunked_array([pa.array(prompts[:100], type=CONVERSATION), pa.array(prompts[100:], type=CONVERSATION)])
    flags = holdout_flags(column, 0.3)
    assert flags == [is_holdout(p, 0.3) for p in prompts]
    assert 0 < sum(flags) < len(prompts)
