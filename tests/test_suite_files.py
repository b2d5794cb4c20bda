"""Once: every suites/*.yaml re-reads to exactly the suite it replaced (tests/legacy_suites.py, the Python
definitions as they were); both this test and the legacy module go in the next commit."""

import dataclasses
from pathlib import Path

import pytest
from legacy_suites import SUITES as LEGACY

from clead.bench import SUITES, seed_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_suite_file_equals_its_python_definition(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    old, new = LEGACY[name], SUITES.get(name)
    assert sorted(SUITES.names()) == sorted(LEGACY)
    for f in dataclasses.fields(old):
        if f.name not in ("base", "runs"):
            assert getattr(new, f.name) == getattr(old, f.name), f.name
    assert list(new.runs) == list(old.runs)
    for run in [*old.runs, *(seed_run(r, s) for r in old.runs for s in old.seeds)]:
        assert new.config(run).to_dict() == old.config(run).to_dict(), run
