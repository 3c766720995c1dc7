"""The SSH executor against the sandbox's SSH servers and a real OpenSSH server: hosts
run at once, connections are kept, host keys are checked, a bad host fails only its own
result, timeouts and aborts stop the remote command, and binary data goes through."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from bot.ssh import HostResult, SshError, SshExecutor
from runbook import ports
from runbook.clusters import Cluster
from tests.conftest import RunningSandbox, free_port
from tests.openssh import OpenSshServer, openssh_server

pytestmark = pytest.mark.timeout(120)


def changed(
    cluster: Cluster,
    *,
    ssh: dict[str, str] | None = None,
    extra: int = 0,
    ports: list[int] | None = None,
) -> Cluster:
    """The cluster with other ssh settings and/or extra schedulers at 127.0.0.1:ports."""
    data = cluster.model_dump()
    data["ssh"].update(ssh or {})
    for i, port in enumerate(ports or []):
        data["schedulers"].append(
            {"host": f"extra-{i + 1}", "address": "127.0.0.1", "ssh_port": port}
        )
    return Cluster.model_validate(data)


def hosts_of(cluster: Cluster) -> list[str]:
    return [s.host for s in cluster.schedulers]


def host_tmp(sandbox: RunningSandbox, host: str) -> Path:
    """The host's tmp directory; commands run in the host's root, so `tmp/x` is here."""
    return sandbox.dir / "hosts" / host / "tmp"


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP listener that accepts and never says a word (a hung sshd)."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


# -- the sandbox ------------------------------------------------------------------------


async def test_runs_on_every_host_at_once(sandbox: RunningSandbox) -> None:
    cluster = sandbox.cluster
    hosts = hosts_of(cluster)
    reported: list[HostResult] = []
    assert HostResult is ports.HostResult  # the engine's result type
    async with SshExecutor(cluster) as ssh:
        remote: ports.Remote = ssh  # and the engine's Remote (checked by mypy)
        assert remote is ssh
        commands = {
            h: f"echo out $SANDBOX_HOST; echo err-{i} >&2; exit {i}" for i, h in enumerate(hosts)
        }
        results = await ssh.run(commands, on_result=reported.append)
        assert list(results) == hosts
        for i, h in enumerate(hosts):
            r = results[h]
            assert (r.host, r.exit_status, r.stdout, r.stderr, r.error) == (
                h,
                i,
                f"out {h}\n",
                f"err-{i}\n",
                None,
            )
            assert r.ok == (i == 0)
            assert 0 < r.duration < 5
        assert sorted(r.host for r in reported) == sorted(hosts)

        # Three one-second commands take one second, not three.
        started = time.monotonic()
        results = await ssh.run({h: "sleep 1" for h in hosts})
        elapsed = time.monotonic() - started
        assert all(r.ok for r in results.values()), results
        assert all(r.duration >= 1 for r in results.values())
        assert elapsed < 2.5, elapsed


async def test_each_result_is_reported_as_soon_as_it_is_ready(sandbox: RunningSandbox) -> None:
    cluster = sandbox.cluster
    fast, slow, failing = hosts_of(cluster)
    started = time.monotonic()
    seen: dict[str, float] = {}

    async def on_result(r: HostResult) -> None:  # async callbacks are awaited
        seen[r.host] = time.monotonic() - started
        if r.host == failing:
            raise RuntimeError("a broken progress view")  # logged; nothing else breaks

    async with SshExecutor(cluster) as ssh:
        results = await ssh.run(
            {fast: "true", slow: "sleep 1.5", failing: "true"}, on_result=on_result
        )
    assert all(r.ok for r in results.values()), results
    assert seen[fast] < 1.0 < 1.5 <= seen[slow], seen
    assert failing in seen


async def test_a_connection_per_host_is_kept_and_shared(
    sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = sandbox.cluster
    hosts = hosts_of(cluster)
    opened: list[str] = []
    real_connect = asyncssh.connect

    async def counting_connect(host: str, port: int, **kwargs: Any) -> Any:
        opened.append(f"{host}:{port}")
        return await real_connect(host, port, **kwargs)

    monkeypatch.setattr(asyncssh, "connect", counting_connect)
    async with SshExecutor(cluster) as ssh:
        # Three runs at once on a new executor: still one connection per host.
        rounds = await asyncio.gather(*(ssh.run({h: "echo hi" for h in hosts}) for _ in range(3)))
        assert all(r.ok for results in rounds for r in results.values())
        assert len(opened) == 3
        first = ssh.connections()
        assert set(first) == set(hosts)
        for _ in range(2):
            results = await ssh.run({h: "true" for h in hosts})
            assert all(r.ok for r in results.values())
        assert len(opened) == 3
        assert all(ssh.connections()[h] is first[h] for h in hosts)

        # A connection that died is opened again on next use.
        first[hosts[0]].close()
        await first[hosts[0]].wait_closed()
        results = await ssh.run({hosts[0]: "echo again"})
        assert results[hosts[0]].stdout == "again\n"
        assert ssh.connections()[hosts[0]] is not first[hosts[0]]
        assert len(opened) == 4
    assert ssh.connections() == {}
    assert first[hosts[1]].is_closed()


async def test_an_unknown_host_key_fails_that_host_only(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    cluster = sandbox.cluster
    h1, h2, h3 = hosts_of(cluster)
    port = cluster.scheduler(h2).ssh_port
    known = tmp_path / "known_hosts"
    lines = cluster.ssh.known_hosts_path.read_text().splitlines()
    known.write_text("\n".join(line for line in lines if f":{port}," not in line) + "\n")
    assert len(known.read_text().splitlines()) == 2
    async with SshExecutor(changed(cluster, ssh={"known_hosts": str(known)})) as ssh:
        results = await ssh.run({h: "echo ran" for h in (h1, h2, h3)})
        assert results[h1].ok and results[h3].ok
        bad = results[h2]
        assert (bad.exit_status, bad.stdout) == (None, "")
        address = cluster.scheduler(h2).connect_address  # each sandbox host has its own
        assert bad.error == f"host key for {h2} ([{address}]:{port}) is not in {known}"
        assert set(ssh.connections()) == {h1, h3}


async def test_a_changed_host_key_is_refused(sandbox: RunningSandbox, tmp_path: Path) -> None:
    cluster = sandbox.cluster
    h1, h2, h3 = hosts_of(cluster)
    port = cluster.scheduler(h2).ssh_port
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    known = tmp_path / "known_hosts"
    out = []
    for line in cluster.ssh.known_hosts_path.read_text().splitlines():
        if f":{port}," in line:
            line = f"{line.split()[0]} {impostor[0]} {impostor[1]}"
        out.append(line)
    known.write_text("\n".join(out) + "\n")
    async with SshExecutor(changed(cluster, ssh={"known_hosts": str(known)})) as ssh:
        results = await ssh.run({h: "echo ran" for h in (h1, h2, h3)})
        assert results[h1].ok and results[h3].ok
        address = cluster.scheduler(h2).connect_address
        assert results[h2].error == (
            f"host key for {h2} ([{address}]:{port}) does not match {known} (changed?)"
        )
        assert results[h2].exit_status is None


async def test_missing_key_or_known_hosts_is_a_clear_error(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    cluster = sandbox.cluster
    h = hosts_of(cluster)[0]
    nowhere = tmp_path / "nope"
    async with SshExecutor(changed(cluster, ssh={"known_hosts": str(nowhere)})) as ssh:
        r = (await ssh.run({h: "true"}))[h]
        assert r.error == f"cannot read known_hosts {nowhere}: No such file or directory"
    async with SshExecutor(changed(cluster, ssh={"key": str(nowhere)})) as ssh:
        r = (await ssh.run({h: "true"}))[h]
        assert r.error == f"cannot read the SSH key {nowhere}: No such file or directory"
        with pytest.raises(ValueError, match="'nonesuch' is not a scheduler of cluster"):
            await ssh.run({"nonesuch": "true"})


async def test_an_unreachable_host_fails_quickly(sandbox: RunningSandbox) -> None:
    cluster = changed(sandbox.cluster, ports=[closed_port()])
    async with SshExecutor(cluster) as ssh:
        started = time.monotonic()
        results = await ssh.run({h: "echo ran" for h in hosts_of(cluster)})
        elapsed = time.monotonic() - started
    assert re.fullmatch(r"ssh to [\d.]+:\d+: connection refused", results["extra-1"].error or "")
    assert results["extra-1"].exit_status is None
    assert all(r.ok for h, r in results.items() if h != "extra-1"), results
    assert elapsed < 1.5, elapsed


async def test_a_hanging_host_fails_at_the_connect_timeout(sandbox: RunningSandbox) -> None:
    async with silent_server() as port:
        cluster = changed(sandbox.cluster, ssh={"connect_timeout": "1s"}, ports=[port])
        async with SshExecutor(cluster) as ssh:
            started = time.monotonic()
            # The hung host first: it must not hold up the hosts after it.
            order = ["extra-1", *hosts_of(sandbox.cluster)]
            results = await ssh.run({h: "sleep 0.2; echo ran" for h in order})
            elapsed = time.monotonic() - started
    hung = results.pop("extra-1")
    assert hung.exit_status is None
    assert hung.error == f"ssh to 127.0.0.1:{port}: connect timed out after 1s"
    assert 1.0 <= hung.duration < 2.0
    for r in results.values():
        assert r.ok and r.stdout == "ran\n" and r.duration < 1.0, r
    assert elapsed < 2.5, elapsed


async def test_a_command_timeout_fails_that_host_only_and_stops_the_command(
    sandbox: RunningSandbox,
) -> None:
    cluster = sandbox.cluster
    slow, h2, h3 = hosts_of(cluster)
    late = host_tmp(sandbox, slow) / "late"
    async with SshExecutor(cluster) as ssh:
        started = time.monotonic()
        results = await ssh.run(
            {slow: "echo started; sleep 2; touch tmp/late; sleep 30", h2: "echo a", h3: "echo b"},
            timeout=1,
        )
        elapsed = time.monotonic() - started
        r = results[slow]
        assert (r.exit_status, r.error, r.stdout) == (None, "timed out after 1s", "started\n")
        assert results[h2].stdout == "a\n" and results[h3].stdout == "b\n"
        assert elapsed < 2.5, elapsed
        # The host is still usable afterwards.
        again = await ssh.run({slow: "echo back"})
        assert again[slow].ok and again[slow].stdout == "back\n"
    await asyncio.sleep(2.0)
    assert not late.exists(), "the timed-out command kept running"


async def test_cancelling_run_stops_the_remote_commands(sandbox: RunningSandbox) -> None:
    cluster = sandbox.cluster
    hosts = hosts_of(cluster)
    async with SshExecutor(cluster) as ssh:
        # Control: the same command left alone does leave its marker.
        control = await ssh.run({hosts[0]: "sleep 0.2; touch tmp/control"})
        assert control[hosts[0]].ok
        assert (host_tmp(sandbox, hosts[0]) / "control").exists()

        reported: list[HostResult] = []
        task = asyncio.create_task(
            ssh.run({h: "sleep 2; touch tmp/marker" for h in hosts}, on_result=reported.append)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.0
        assert sorted((r.host, r.error, r.exit_status) for r in reported) == [
            (h, "cancelled", None) for h in hosts
        ]
        await asyncio.sleep(2.5)
        for h in hosts:
            assert not (host_tmp(sandbox, h) / "marker").exists(), h
        # The executor carries on after an abort.
        results = await ssh.run({h: "echo ok" for h in hosts})
        assert all(r.ok for r in results.values()), results


async def test_binary_stdin_and_read_file_round_trip(sandbox: RunningSandbox) -> None:
    cluster = sandbox.cluster
    h1, h2, _ = hosts_of(cluster)
    blob = bytes(range(256)) * 4 + b"\xff\xfe\x00\x80" + os.urandom(1 << 20)
    async with SshExecutor(cluster) as ssh:
        results = await ssh.run(
            {h1: "cat > tmp/blob && wc -c < tmp/blob", h2: "cat > tmp/empty; wc -c < tmp/empty"},
            stdin={h1: blob, h2: b""},
        )
        assert results[h1].ok and results[h1].stdout.strip() == str(len(blob))
        assert results[h2].ok and results[h2].stdout.strip() == "0"
        assert (host_tmp(sandbox, h1) / "blob").read_bytes() == blob
        assert await ssh.read_file(h1, "tmp/blob") == blob
        # Commands without stdin get end-of-file at once: `cat` does not wait for input.
        r = (await ssh.run({h1: "cat; echo done"}, timeout=5))[h1]
        assert (r.ok, r.stdout) == (True, "done\n")
        # Output that is not UTF-8 is decoded with replacement characters.
        r = (await ssh.run({h1: r"printf 'caf\xe9\n'"}))[h1]
        assert r.stdout == "caf\ufffd\n"
        with pytest.raises(SshError, match=f"^{h1}: cannot read tmp/nope: .*No such file") as exc:
            await ssh.read_file(h1, "tmp/nope")
        assert (exc.value.host, exc.value.path) == (h1, "tmp/nope")
        assert exc.value.reason == "cat: tmp/nope: No such file or directory"
        # Paths are quoted for the remote shell.
        (host_tmp(sandbox, h1) / "a b;$x").write_bytes(b"odd\n")
        assert await ssh.read_file(h1, "tmp/a b;$x") == b"odd\n"


# -- a real OpenSSH server --------------------------------------------------------------


@pytest.fixture
def openssh(tmp_path: Path) -> Iterator[OpenSshServer]:
    yield from openssh_server(tmp_path / "openssh")


async def test_openssh_runs_in_parallel_on_kept_connections(openssh: OpenSshServer) -> None:
    cluster = openssh.cluster(hosts=3)
    hosts = hosts_of(cluster)
    async with SshExecutor(cluster) as ssh:
        results = await ssh.run(
            {
                h: f"echo $SSH_CONNECTION; echo err-{i} >&2; exit {i + 1}"
                for i, h in enumerate(hosts)
            }
        )
        client_ports = {}
        for i, h in enumerate(hosts):
            r = results[h]
            assert (r.exit_status, r.stderr, r.error) == (i + 1, f"err-{i}\n", None), r
            client_ports[h] = r.stdout.split()[1]
        assert len(set(client_ports.values())) == 3  # a connection per host

        started = time.monotonic()
        results = await ssh.run({h: "sleep 1" for h in hosts})
        assert all(r.ok for r in results.values()), results
        assert time.monotonic() - started < 2.5

        # Later runs, also concurrent ones, go over the same connections.
        rounds = await asyncio.gather(
            *(ssh.run({h: "echo $SSH_CONNECTION" for h in hosts}) for _ in range(3))
        )
        for results in rounds:
            assert {h: r.stdout.split()[1] for h, r in results.items()} == client_ports


async def test_openssh_host_keys_are_checked(openssh: OpenSshServer, tmp_path: Path) -> None:
    port = openssh.port
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    async with SshExecutor(openssh.cluster(known_hosts=empty)) as ssh:
        r = (await ssh.run({"openssh-1": "true"}))["openssh-1"]
        assert r.error == f"host key for openssh-1 ([127.0.0.1]:{port}) is not in {empty}"

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} {other[0]} {other[1]}\n")
    async with SshExecutor(openssh.cluster(known_hosts=wrong)) as ssh:
        r = (await ssh.run({"openssh-1": "true"}))["openssh-1"]
        assert r.error == (
            f"host key for openssh-1 ([127.0.0.1]:{port}) does not match {wrong} (changed?)"
        )
    async with SshExecutor(openssh.cluster()) as ssh:
        assert (await ssh.run({"openssh-1": "true"}))["openssh-1"].ok


async def test_openssh_binary_stdin_and_read_file(openssh: OpenSshServer) -> None:
    cluster = openssh.cluster()
    target = openssh.dir / "copied.bin"
    blob = b"\x00\xff\xfe" + os.urandom(1 << 20)
    async with SshExecutor(cluster) as ssh:
        r = (await ssh.run({"openssh-1": f"cat > {target}"}, stdin={"openssh-1": blob}))[
            "openssh-1"
        ]
        assert r.ok, r
        assert target.read_bytes() == blob
        assert await ssh.read_file("openssh-1", str(target)) == blob
        with pytest.raises(SshError, match="No such file"):
            await ssh.read_file("openssh-1", str(openssh.dir / "nope"))


async def test_openssh_timeout_and_cancel_stop_the_remote_command(
    openssh: OpenSshServer,
) -> None:
    if os.geteuid() == 0:
        # sshd ignores "signal" requests in root sessions (no post-auth privilege
        # separation), and OpenSSH does not end a command whose channel closes.
        pytest.skip("sshd does not deliver signals to root logins; run as a normal user")
    cluster = openssh.cluster(hosts=2)
    h1, h2 = hosts_of(cluster)
    async with SshExecutor(cluster) as ssh:
        r = (await ssh.run({h1: f"sleep 2; touch {openssh.dir}/late"}, timeout=0.5))[h1]
        assert r.error == "timed out after 0.5s"
        task = asyncio.create_task(ssh.run({h2: f"sleep 2; touch {openssh.dir}/aborted"}))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.sleep(2.5)
    assert not (openssh.dir / "late").exists()
    assert not (openssh.dir / "aborted").exists()


def test_openssh_fixture_uses_its_own_known_hosts(openssh: OpenSshServer) -> None:
    line = openssh.known_hosts.read_text().split()
    assert line[0] == f"[127.0.0.1]:{openssh.port}"
    with socket.create_connection(("127.0.0.1", openssh.port), timeout=2) as s:
        assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
