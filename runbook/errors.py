"""Every error the restore's own code raises, in one tree.

Each adapter catches its library's exceptions once, at its boundary, and raises one of
these (or, where a failure is a per-host result rather than an exception, keeps the
same one line in `HostResult.error`): asyncssh in `bot.ssh`, httpx in `bot.probes` and
`bot.mesos`, kazoo in `bot.leader`, redis-py in `runbook.store`. Above the adapters no
code names a library's exception, and none duck-types one (`reason_of` gives the one
line of any error).

    RestoreError                  the base: `reason` is one line naming host/file/field
    ├── Refused                   an operation not allowed now; nothing was changed
    ├── RemoteError               a scheduler host could not be used or read (bot.ssh)
    │   ├── HostUnreachable       no connection: refused, timed out, lost, no route
    │   ├── AuthFailed            the host refused the cluster file's user and key
    │   ├── HostKeyRejected       its host key is not (or no longer) in known_hosts
    │   └── CommandTimeout        the command did not finish within its timeout
    ├── ProbeError                a scheduler's /vars could not be read (bot.probes)
    ├── MesosUnavailable          the Mesos master could not be read (bot.mesos)
    ├── ElectionError             the leader's sources could not be read (bot.leader)
    │   └── ZkUnavailable         ZooKeeper could not be read
    └── StoreUnavailable          the Redis store could not be used (runbook.store)
        └── StoreScriptMissing    the server lost a script again right after its reload

`Refused` is what the engine raises (`runbook.engine.Refused` is this class); a front
shows its message as is. The other branches are what an adapter could not do: a step
turns them into a failed outcome with their `reason`.
"""

from __future__ import annotations

__all__ = [
    "AuthFailed",
    "CommandTimeout",
    "ElectionError",
    "HostKeyRejected",
    "HostUnreachable",
    "MesosUnavailable",
    "ProbeError",
    "Refused",
    "RemoteError",
    "RestoreError",
    "StoreScriptMissing",
    "StoreUnavailable",
    "ZkUnavailable",
    "reason_of",
]


class RestoreError(Exception):
    """The base of the tree; `reason` is the one line an operator reads."""

    @property
    def reason(self) -> str:
        return str(self)


class Refused(RestoreError):
    """An operation that is not allowed now; nothing was changed. The message says why."""


class RemoteError(RestoreError):
    """A scheduler host could not be used, or a file on it read.

    `host` is the cluster file's host; `path` the file when one was being read; `reason`
    the one line saying why (the message adds the host and path)."""

    def __init__(self, host: str, reason: str, path: str | None = None) -> None:
        where = f"{host}: cannot read {path}" if path is not None else host
        super().__init__(f"{where}: {reason}")
        self.host = host
        self.path = path
        self._reason = reason

    @property
    def reason(self) -> str:
        return self._reason


class HostUnreachable(RemoteError):
    """No SSH connection to the host: refused, timed out, lost, no route."""


class AuthFailed(RemoteError):
    """The host refused the cluster file's user and key."""


class HostKeyRejected(RemoteError):
    """The host's key is not in the cluster file's known_hosts, or does not match it."""


class CommandTimeout(RemoteError):
    """The command did not finish within its timeout (it was stopped)."""


class ProbeError(RestoreError):
    """A scheduler's /vars could not be read: the message is one line."""


class MesosUnavailable(RestoreError):
    """The Mesos master could not be read: `reason` is one line for the card."""


class ElectionError(RestoreError):
    """A source of who leads (ZooKeeper) could not be read."""


class ZkUnavailable(ElectionError):
    """ZooKeeper could not be read; the message is one line naming the ensemble."""


class StoreUnavailable(RestoreError):
    """The Redis server could not be reached within the outage wait."""


class StoreScriptMissing(StoreUnavailable):
    """The server answered NOSCRIPT again right after the script was loaded anew (a
    SCRIPT FLUSH loop, or a proxy that balances over servers without the script)."""


def reason_of(exc: BaseException) -> str:
    """The one line of any error: a `RestoreError`'s reason, else its message, else its
    type's name (for what an adapter did not foresee)."""
    if isinstance(exc, RestoreError):
        return exc.reason
    return str(exc).strip() or type(exc).__name__
