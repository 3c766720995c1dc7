"""A sandbox started as `python -m sandbox` (every option of sandbox.cluster.Options,
including the packaged-host ones `aurora-restore sandbox` may not offer yet), driven like
tests.conftest.RunningSandbox."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT, RunningSandbox


class ModuleSandbox(RunningSandbox):
    def start(self, timeout: float = 15.0) -> RunningSandbox:
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--dir", str(self.dir), *self.args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith("ready"):
                self.ready_after = time.monotonic() - self.started_at
                return self
        self.stop()
        raise AssertionError("sandbox did not become ready:\n" + "".join(self.output))


@contextmanager
def module_sandboxes(tmp_path: Path) -> Iterator[Callable[..., RunningSandbox]]:
    """make(*args, name=...) starts one; all are stopped on leaving."""
    started: list[RunningSandbox] = []

    def make(*args: str, name: str = "msandbox") -> RunningSandbox:
        sb = ModuleSandbox(tmp_path / name, "--restart-sec", "0.5", *args)
        started.append(sb.start())
        return sb

    try:
        yield make
    finally:
        for sb in started:
            sb.stop()
