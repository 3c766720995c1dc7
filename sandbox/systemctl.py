"""The `systemctl` stand-in on a simulated host (`python -m sandbox.systemctl ARGS`).

It forwards `start|stop|restart|is-active|status UNIT` to the sandbox's control server
(SANDBOX_CONTROL), like systemctl talks to systemd. Changing a unit needs root, as on a
real host: run it through `sudo` (the sudo stand-in sets SANDBOX_USER=root).
"""

from __future__ import annotations

import json
import os
import socket
import sys

VERBS = ("start", "stop", "restart", "is-active", "status")
CHANGING = ("start", "stop", "restart")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    quiet = False
    words = []
    for a in args:
        if a in ("-q", "--quiet"):
            quiet = True
        elif a in ("--no-pager", "--no-block", "--no-ask-password"):
            continue
        elif a.startswith("-"):
            print(f"systemctl: unrecognized option '{a}'", file=sys.stderr)
            return 1
        else:
            words.append(a)
    if len(words) != 2 or words[0] not in VERBS:
        print("usage: systemctl start|stop|restart|is-active|status UNIT", file=sys.stderr)
        return 1
    verb, unit = words
    if verb in CHANGING and os.environ.get("SANDBOX_USER") != "root":
        print(
            f"Failed to {verb} {unit.removesuffix('.service')}.service: "
            "Interactive authentication required.",
            file=sys.stderr,
        )
        return 1
    host, _, port = os.environ["SANDBOX_CONTROL"].rpartition(":")
    request = {"host": os.environ["SANDBOX_HOST"], "verb": verb, "unit": unit}
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(json.dumps(request).encode() + b"\n")
        answer = json.loads(conn.makefile("rb").readline())
    if not quiet:
        sys.stdout.write(answer["out"])
    sys.stderr.write(answer["err"])
    return int(answer["code"])


if __name__ == "__main__":
    sys.exit(main())
