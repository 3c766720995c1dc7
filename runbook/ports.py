"""The small interfaces through which the engine reaches the outside.

The engine never opens a socket itself: the front end (console or Slack app) hands it a
`Remote` (SSH, `bot.ssh`), a `VarsProbe` (HTTP `/vars`, `bot.probes`) and a clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class HostResult:
    host: str
    exit_status: int | None
    stdout: str
    stderr: str
    duration: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The stored form of a result (the host is in its key, see
        `runbook.store.result_key`): the one place a result becomes JSON-able data."""
        return {
            "exit_status": self.exit_status,
            "duration": round(self.duration, 3),
            "error": self.error,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }

    @classmethod
    def from_dict(cls, host: str, raw: Mapping[str, Any]) -> HostResult:
        """A stored result back (extra fields such as `truncated` are ignored)."""
        status = raw.get("exit_status")
        return cls(
            host,
            status if isinstance(status, int) else None,
            str(raw.get("stdout") or ""),
            str(raw.get("stderr") or ""),
            float(raw.get("duration") or 0),
            str(raw["error"]) if raw.get("error") is not None else None,
        )


OnResult = Callable[[HostResult], Awaitable[None] | None]


class Remote(Protocol):
    async def run(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float | None = None,
        stdin: Mapping[str, bytes] | None = None,
        on_result: OnResult | None = None,
    ) -> dict[str, HostResult]: ...

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes: ...

    async def close(self) -> None: ...


class VarsProbe(Protocol):
    async def vars(
        self, endpoints: Mapping[str, tuple[str, int]], timeout: float
    ) -> dict[str, dict[str, str] | str]:
        """Each host's /vars as a dict, or a one-line error string."""
        ...


class MetricsProbe(Protocol):
    """libprocess's metrics of each scheduler (`GET /metrics/snapshot` on LIBPROCESS_PORT):
    the Mesos replicated log's `log/recovered` (1 once the replica caught up) among them.
    The /vars probe offers it too (bot.probes); the offline procedure asks for it."""

    async def metrics(
        self, endpoints: Mapping[str, tuple[str, int]], timeout: float
    ) -> dict[str, dict[str, float] | str]:
        """Each host's metrics snapshot (name → number), or a one-line error string."""
        ...


class LeaderReport(Protocol):
    """What a leader detector found: a table host x source, and one agreed leader or why not."""

    @property
    def table(self) -> dict[str, dict[str, str]]: ...

    @property
    def leader(self) -> str | None: ...

    @property
    def problems(self) -> list[str]: ...


class LeaderDetector(Protocol):
    async def __call__(
        self, cluster: Any, probe: VarsProbe, remote: Remote, state: str
    ) -> LeaderReport: ...


class SourcesCheck(Protocol):
    """For preflight: each configured leader source → None when usable, else why not."""

    async def __call__(
        self, cluster: Any, probe: VarsProbe, remote: Remote
    ) -> Mapping[str, str | None]: ...


class MesosTasks(Protocol):
    """The framework's running tasks, from the Mesos master (bot.mesos.running_tasks);
    raises with a one-line reason when the master cannot be read."""

    async def __call__(self, master_url: str, framework_id: str, timeout: float) -> list[Any]: ...
