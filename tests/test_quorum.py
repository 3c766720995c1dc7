"""The sandbox's replicated log needs a quorum (a majority) of replicas to elect a leader."""

from __future__ import annotations

import time

import pytest

from tests.conftest import RunningSandbox, wait_for
from tests.test_sandbox_aurora import JOURNAL, on_all, paths, run

pytestmark = pytest.mark.timeout(240)


def test_a_lone_scheduler_waits_for_a_quorum_then_leads(sandbox: RunningSandbox) -> None:
    _, env, _ = run(sandbox, "scheduler-1", f"cat {paths(sandbox, 'scheduler-1')['env_file']}")
    assert "\nQUORUM_SIZE=2\n" in env  # 2 of 3: floor(3 / 2) + 1
    on_all(sandbox, "sudo systemctl stop aurora-scheduler")
    run(sandbox, "scheduler-1", "sudo systemctl start aurora-scheduler")
    wait_for(lambda: sandbox.states()["scheduler-1"] == "STORAGE_PREPARED", timeout=30)
    wait_for(
        lambda: (
            "Coordinator failed to get elected: 1 of the 2 replicas"
            in run(sandbox, "scheduler-1", JOURNAL)[1]
        ),
        timeout=30,
    )
    time.sleep(2)  # it keeps waiting: no leader with one replica of three
    assert sandbox.states()["scheduler-1"] == "STORAGE_PREPARED"
    run(sandbox, "scheduler-2", "sudo systemctl start aurora-scheduler")
    wait_for(lambda: sandbox.leaders("ACTIVE"), timeout=60)
    assert sandbox.states()["scheduler-3"] == "DOWN"
