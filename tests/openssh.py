"""A real OpenSSH server (Debian's /usr/sbin/sshd) for tests, on a free loopback port.

It has its own host key, its own sshd_config and authorized_keys, all in a temporary
directory, and lets in only the current user with a key made for the test. `cluster()`
describes it as a cluster file would, with a known_hosts that holds its real key, so
the bot's SSH code can be tested against the server it will meet in production and
not only against the sandbox's asyncssh servers.
"""

from __future__ import annotations

import getpass
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.clusters import Cluster, parse_clusters

SSHD = Path("/usr/sbin/sshd")
IN_CI = os.environ.get("CI") == "true"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    path.chmod(0o600)
    return Path(str(path) + ".pub").read_text().strip()


class OpenSshServer:
    """`sshd -D -e -f DIR/sshd_config` as a child process."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name or getpass.getuser()
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "id_ed25519"
        self.host_pub = _keygen(self.host_key, "test-sshd-host")
        self.client_pub = _keygen(self.client_key, "test-sshd-client")
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text(self.client_pub + "\n")
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_pub}\n")
        self.log = self.dir / "sshd.log"
        self.config = self.dir / "sshd_config"
        root = os.geteuid() == 0
        self.config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "PidFile none\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            f"PermitRootLogin {'prohibit-password' if root else 'no'}\n"
            f"AllowUsers {self.user}\n"
            "AllowAgentForwarding no\n"
            "AllowTcpForwarding no\n"
            "X11Forwarding no\n"
            "PrintMotd no\n"
            "LogLevel VERBOSE\n"
            "MaxStartups 100:30:200\n"
            "Subsystem sftp internal-sftp\n"
        )
        if root:
            # The privilege-separation directory sshd insists on when run as root.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> OpenSshServer:
        check = subprocess.run(
            [str(SSHD), "-t", "-f", str(self.config)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise AssertionError(f"sshd -t rejects the test config: {check.stderr}")
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sshd exited: {self.log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-2.0-OpenSSH"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"sshd did not listen: {self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def cluster(
        self,
        hosts: int = 1,
        *,
        known_hosts: Path | None = None,
        connect_timeout: str = "5s",
        command_timeout: str = "1m",
    ) -> Cluster:
        """A cluster whose `hosts` schedulers are all this one server."""
        data = {
            "clusters": {
                "openssh": {
                    "ssh": {
                        "user": self.user,
                        "key": str(self.client_key),
                        "known_hosts": str(known_hosts or self.known_hosts),
                        "connect_timeout": connect_timeout,
                        "command_timeout": command_timeout,
                    },
                    "schedulers": [
                        {"host": f"openssh-{i + 1}", "address": "127.0.0.1", "ssh_port": self.port}
                        for i in range(hosts)
                    ],
                }
            }
        }
        return parse_clusters(data, "test")["openssh"]


def openssh_server(directory: Path) -> Iterator[OpenSshServer]:
    """Fixture body: skip when sshd is missing (outside CI only), stop it afterwards."""
    if not SSHD.exists():
        if IN_CI:
            pytest.fail("OpenSSH's sshd is not installed (apt-get install openssh-server)")
        pytest.skip("OpenSSH's sshd is not installed (apt-get install openssh-server)")
    server = OpenSshServer(directory).start()
    try:
        yield server
    finally:
        server.stop()
