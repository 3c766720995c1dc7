"""Every restore procedure by name: the registry the composition root gives the engine
(runbook.engine) and the fronts and the transcript look a restore's procedure up in
(runbook.step.procedure_named). Apart from the definitions so that a procedure may
build on another's steps (runbook.offline reuses runbook.procedure's)."""

from __future__ import annotations

from collections.abc import Mapping

from runbook.offline import OFFLINE
from runbook.procedure import ONLINE
from runbook.step import Procedure

PROCEDURES: Mapping[str, Procedure] = {ONLINE.name: ONLINE, OFFLINE.name: OFFLINE}
