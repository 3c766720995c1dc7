"""No code outside a procedure's own definition names one of its step ids.

The engine, the transcript, readiness, the views and the listeners ask a procedure for a
step by its role (`Procedure.first(Role.REVIEW)`) or by a step's fields; only the modules
that define procedures (runbook/procedure.py, runbook/offline.py) spell their ids. This
greps every .py under runbook/, bot/ and handlers/ for a quoted step id of any procedure.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from runbook.step import Procedure

ROOT = Path(__file__).resolve().parent.parent
# The modules that define procedures: the only ones that may name their step ids.
DEFINITIONS = {"runbook/procedure.py", "runbook/offline.py"}


def procedures() -> list[Procedure]:
    """Every procedure the definition modules hold (runbook/offline.py once it exists)."""
    found: list[Procedure] = []
    for path in sorted(DEFINITIONS):
        if not (ROOT / path).exists():
            continue
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        found += [v for v in vars(module).values() if isinstance(v, Procedure)]
    return found


def step_id_pattern() -> re.Pattern[str]:
    ids = sorted({s.id for p in procedures() for s in p}, key=len, reverse=True)
    assert ids, "no procedure found"
    alternatives = "|".join(re.escape(i) for i in ids)
    return re.compile(r"""(["'])(""" + alternatives + r")\1")


def named_step_ids(folder: str) -> list[str]:
    """file:line: text, for every quoted step id in the .py files under `folder`."""
    pattern = step_id_pattern()
    hits = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in DEFINITIONS:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = pattern.search(line)
            if m:
                hits.append(f"{rel}:{n}: {m.group(0)} in {line.strip()[:100]}")
    return hits


def test_the_pattern_finds_a_quoted_id_and_nothing_else() -> None:
    pattern = step_id_pattern()
    assert pattern.search('sid = "restore.review"')
    assert pattern.search("x == 'prep.preflight'")
    assert not pattern.search("restore.review is the review step")
    assert not pattern.search('"restore.review.more"')
    assert not pattern.search("\"prep.preflight'")


def test_runbook_names_no_step_id_outside_the_definitions() -> None:
    hits = named_step_ids("runbook")
    assert not hits, "step ids named outside a procedure's definition:\n" + "\n".join(hits)


@pytest.mark.parametrize("folder", ["bot", "handlers", "benchmarks"])
def test_fronts_name_no_step_id(folder: str) -> None:
    hits = named_step_ids(folder)
    assert not hits, "step ids named outside a procedure's definition:\n" + "\n".join(hits)


def test_step_ids_are_unique_across_procedures() -> None:
    """A front may meet an event before it knows the restore's procedure (bot.console
    looks a step up in every procedure): no id may mean two steps."""
    from runbook.procedures import PROCEDURES

    seen: dict[str, str] = {}
    for name, procedure in PROCEDURES.items():
        for sid in procedure.ids():
            assert sid not in seen, f"{sid} is in both {seen[sid]} and {name}"
            seen[sid] = name
    assert len(PROCEDURES) >= 2
