"""A sandbox started as `python -m sandbox` (every option of sandbox.cluster.Options,
including the packaged-host ones `aurora-restore sandbox` may not offer yet), driven like
tests.conftest.RunningSandbox, which it is with another launcher."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import RunningSandbox


class ModuleSandbox(RunningSandbox):
    launcher = ("sandbox",)
    ready_timeout = 15.0


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
