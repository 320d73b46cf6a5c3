"""Property: whatever text a source holds (arbitrary unicode, SQL, shell and template syntax, markers our
shapes parse, very long values), every connector returns it byte for byte, and none of it is executed:
after the reads the source still holds every row, a second read included. Counts go to RELIABILITY.md."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignloop.connectors.base import Window, load_connector
from tests.contract.conftest import _with_providers
from tests.contract.framework import T0, ContractRow, find_provider, rows_of
from tests.hostile import EXAMPLES, hostile_text

pytestmark = [pytest.mark.slow, pytest.mark.reliability]


@pytest.mark.parametrize("name", _with_providers())
def test_every_connector_returns_hostile_text_unchanged_and_executes_none_of_it(name, tmp_path_factory,
                                                                               record_property):
    provider, cls = find_provider(name), load_connector(name)
    tried: list[int] = []
    stand_ins: set[str] = set()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(hostile_text(), min_size=1, max_size=6))
    def check(bodies: list[str]) -> None:
        rows = [ContractRow(f"r{i}", T0 + timedelta(minutes=i), body) for i, body in enumerate(bodies)]
        with provider.seeded_source(tmp_path_factory.mktemp(f"hostile-{name}"), rows) as source:
            stand_ins.add(source.stand_in or "")
            connector = cls(cls.Settings.model_validate(source.options))
            window = Window(table=source.table, cursor_column=source.cursor, columns=source.columns)
            for _ in range(2):  # a second read finds every row: nothing read was executed
                got = rows_of(connector.read(window), source.columns)
                assert sorted(got) == sorted((r.id, r.ts, r.body) for r in rows)
        tried.append(len(bodies))

    check()
    record_property("reliability", json.dumps({"hostile": f"connector {name}", "inputs": sum(tried),
                                               "examples": len(tried), "changed": 0, "injections_executed": 0,
                                               "stand_in": "; ".join(sorted(stand_ins - {""}))}))
