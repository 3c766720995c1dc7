"""Redaction (runbook.redact): the secret shapes it masks, the look-alikes it leaves
alone, that every pattern stays linear on hostile output, the registered literals, the
extra patterns of AURORA_RESTORE_REDACT (and their wiring in bot.settings), the cut of a
capped output, and the logging filter."""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.settings import SettingsError, load
from runbook import redact as redact_mod
from runbook.redact import (
    MASK,
    RedactingFilter,
    cap,
    configure,
    install_log_redaction,
    redact,
    redact_capped,
    register_secret,
)

# (text, the secret in it, what must stay visible)
SECRETS: list[tuple[str, str, str]] = [
    ("--password hunter2", "hunter2", "--password "),
    ("--password=hunter2", "hunter2", "--password="),
    ("mysql --db-password 'hunter 2' -h db", "hunter 2", "--db-password '"),
    ('password="hunter2"', "hunter2", 'password="'),
    ("password='hunter2'", "hunter2", "password='"),
    ('{"password": "hunter2", "user": "bob"}', "hunter2", '"user": "bob"'),
    ("{'password': 'hunter2'}", "hunter2", "'password': '"),
    ('"{\\"password\\": \\"hunter2\\"}"', "hunter2", '\\"password\\": \\"'),
    ("password: hunter2", "hunter2", "password: "),
    ("Password : hunter2", "hunter2", "Password : "),
    ("DB_PASSWORD=hunter2", "hunter2", "DB_PASSWORD="),
    ("export MYSQL_ROOT_PASSWORD=hunter2", "hunter2", "MYSQL_ROOT_PASSWORD="),
    ("PGPASSWORD=hunter2 psql", "hunter2", " psql"),
    ("SLACK_SIGNING_SECRET=8f14e45fceea167a5a36dedd4bea2543", "8f14e45fceea", "SIGNING_SECRET="),
    ("client_secret=abcDEF123", "abcDEF123", "client_secret="),
    ("secret_key = 'abcDEF123'", "abcDEF123", "secret_key = '"),
    ("SECRET_KEY=abcDEF123", "abcDEF123", "SECRET_KEY="),
    ("passwd=hunter2", "hunter2", "passwd="),
    ("pwd=hunter2", "hunter2", "pwd="),
    ("MYSQL_PWD=hunter2", "hunter2", "MYSQL_PWD="),
    ("passphrase: correct-horse", "correct-horse", "passphrase: "),
    ("api_key=0123abcd", "0123abcd", "api_key="),
    ("X-Api-Key: 0123abcd", "0123abcd", "X-Api-Key: "),
    ("apikey=0123abcd", "0123abcd", "apikey="),
    ("access_key=0123abcd", "0123abcd", "access_key="),
    ("private_key: 0123abcd", "0123abcd", "private_key: "),
    ("auth_token=0123abcd", "0123abcd", "auth_token="),
    ("https://api.example.com/x?access_token=0123abcd&page=2", "0123abcd", "&page=2"),
    ("-zk_digest_credentials=aurora:s3cr3tpw", "s3cr3tpw", "-zk_digest_credentials="),
    ("password2=hunter2", "hunter2", "password2="),
    ("token=" + "Zq" * 2000 + " next", "ZqZqZq", " next"),  # a long value goes whole
    ("<password>hunter2</password>", "hunter2", "</password>"),
    ("'password' => 'hunter2'", "hunter2", "'password' => '"),
    ('token := "hunter2"', "hunter2", "token := "),
    ("--api-key 0123abcd --verbose", "0123abcd", "--verbose"),
    ("--client-secret=0123abcd", "0123abcd", "--client-secret="),
    ("-token 0123abcd", "0123abcd", "-token "),
    ("ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A", ""),
    ("key id AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE", "key id "),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI",
        "aws_secret_access_key = ",
    ),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI", "AWS_SECRET_ACCESS_KEY="),
    ('"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG"', "wJalrXUtnFEMI", '"SecretAccessKey": "'),
    ('"SessionToken": "FwoGZXIvYXdzEBYaDH"', "FwoGZXIvYXdzEBYaDH", '"SessionToken": "'),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3",
        "jwt ",
    ),
    (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc",
        "eyJhbGciOiJIUzI1NiJ9",
        "Authorization: Bearer ",
    ),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "Authorization: Basic "),
    ("authorization: Negotiate YIIGhgYGKwYBBQUC", "YIIGhgYGKwYBBQUC", "Negotiate "),
    ("Authorization: token ghx0123456789", "ghx0123456789", "Authorization: token "),
    ("curl -H 'Proxy-Authorization: Basic dXNlcjpw' x", "dXNlcjpw", "Proxy-Authorization"),
    ("url=https://bob:s3cret@zk.example.com/x", "s3cret", "https://bob:"),
    ("redis://:s3cretpw@redis.internal:6379/0", "s3cretpw", "@redis.internal:6379/0"),
    ("mongodb+srv://app:p%40ss@cluster0.example.net", "p%40ss", "mongodb+srv://app:"),
    ("jdbc:mysql://root:s3cret@db:3306/aurora", "s3cret", "root:"),
    ("ftp://u:p@ss@host/file", "p@ss", "@host/file"),
    ("git clone bob:s3cret@git.example.com:org/repo", "s3cret", "bob:"),
    ("proxy=alice:pa:ss@proxy.example.com", "pa:ss", "alice:"),
    ("curl -u bob:s3cret https://x", "s3cret", "-u bob:"),
    ("machine api.example.com login bob password s3cret", "s3cret", "login bob password "),
    ("token=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGh", "token="),
    ("xoxp-123456789012-123456789012-abcdef", "abcdef", ""),
    ("xapp-1-A0123456789-1234567890123-abcdef0123", "abcdef0123", ""),
    ("xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAxMi0x", "Mi0yLTEyMzQ1", ""),
    ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX", "XXXXXXXXXXXX", "hooks.slack.com"),
    ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_0123456789", ""),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "11ABCDEFG", ""),
    ("glpat-0123456789abcdefghij", "0123456789abcdefghij", ""),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nQUJD\n-----END RSA PRIVATE KEY-----\nok",
        "MIIEpAIBAAKCAQEA",
        "-----END RSA PRIVATE KEY-----\nok",
    ),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n(no end)", "b3BlbnNzaC1rZXk", ""),
    (
        "before\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----\nafter",
        "MHcCAQEEI",
        "before\n-----BEGIN EC PRIVATE KEY-----",
    ),
    (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nMIIFHz\n"
        "-----END ENCRYPTED PRIVATE KEY-----",
        "MIIFHz",
        "",
    ),
    (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----",
        "lQOYBF",
        "",
    ),
]

# Left exactly as they are. Decisions: a name that only contains a keyword is not a
# secret's name (`password_file`, `--password-file`, `token_ttl`), and PWD is a directory.
INNOCENT: list[str] = [
    "password_file=/etc/aurora/password",
    "--password-file /etc/aurora/password",
    "docker login --password-stdin registry.example.com",
    "token_ttl=5m secret_name=db-creds tokens=5 max_tokens=100",
    "-shiro_credentials_matcher=org.apache.shiro.authc.credential.SimpleCredentialsMatcher",
    "-http_authentication_mechanism=BASIC",
    "--announcer-ensemble 127.0.0.1:2181",
    "zk://localhost:1111/mesos/master",
    "zk://zk1:2181,zk2:2181/aurora/scheduler",
    "task_store_RUNNING 5",
    "scheduler-backup-2026-11-30-14-05",
    "1700000000000-www-data-prod-hello-0-6a1b2c3d-4e5f-6789-abcd-ef0123456789",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "PWD=/home/aurora OLDPWD=/",
    "git@github.com:apache/aurora.git",
    "scp aurora@sched1:/var/lib/aurora/backups/x .",
    "aurora-scheduler@sched1.service",
    "nginx:1.25@sha256:0123456789abcdef",
    "docker run -u 1000:1000 busybox",
    "2026-12-01T22:22:06Z INFO leader elected at 10.0.0.1:8081",
    "Enter password:",
    "password:\nnext line",
    'password=""',
    "No password was set; the token is missing.",
    "mail ops@example.com about it",
    "Token::new() and Password::hash()",
    "ls -p x; sshpass -p x",
    "http://sched1:8081/vars",
    "key=value keyboard=us monkey=1",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx aurora@sched1",
    f"already {MASK} and password={MASK}",
]


@pytest.mark.parametrize(("text", "secret", "kept"), SECRETS, ids=[s[1][:20] for s in SECRETS])
def test_secret_shapes_are_masked(text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out
    assert MASK in out
    assert kept in out  # the name stays visible, only the value goes
    assert redact(out) == out  # masking twice changes nothing more


@pytest.mark.parametrize("text", INNOCENT)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_tables_are_large_enough() -> None:
    assert len(SECRETS) >= 40 and len(INNOCENT) >= 20


# ---- linearity ------------------------------------------------------------------------

MB = 1_000_000


def _repeat(unit: str) -> str:
    return (unit * (MB // len(unit) + 1))[:MB]


HOSTILE: dict[str, str] = {
    "a.a.": _repeat("a."),
    "password=": _repeat("password="),
    "password": _repeat("password"),
    "password:": _repeat("password: "),
    "json-open": _repeat('"password": "'),
    "dq-open": _repeat('password="'),
    "escaped-dq": _repeat('password=\\"'),
    "sq-backslash": _repeat("password='\\"),
    "--password": _repeat("--password "),
    "--pwd": _repeat("--pwd "),
    "dashes": _repeat("-"),
    "-a": _repeat("-a"),
    "--long-name": "--" + "a" * (MB - 2),
    "-a.a": _repeat(" -a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"),
    "keywords": _repeat("token secret key pwd pass credential "),
    "token=a": _repeat("token=a "),
    "eyJ": _repeat("eyJ"),
    "eyJ.": _repeat("eyJ."),
    "eyJ-": _repeat("eyJ-"),
    "jwt-ish": _repeat("eyJaaaa.eyJaaaa."),
    "eyJ-run": "eyJ" + "a" * (MB - 3),
    "pem-begin": _repeat("-----BEGIN PRIVATE KEY-----"),
    "pem-body": "-----BEGIN PRIVATE KEY-----\n" + _repeat("QUJD\n"),
    "pem-end": _repeat("-----END PRIVATE KEY-----"),
    "pem-begin-space": _repeat("-----BEGIN "),
    "colons": _repeat(":"),
    "ats": _repeat("@"),
    "slashes": _repeat("/"),
    "a:": _repeat("a:"),
    "a@": _repeat("a@"),
    "a:a@": _repeat("a:a@"),
    "a:b:": "a:" + _repeat("b:"),
    "x.y:": _repeat("x.y:"),
    "scheme": _repeat("a://"),
    "scheme-user": _repeat("a://a:"),
    "url-ats": "https://u:" + _repeat("@"),
    "url-colons": "https://" + _repeat(":"),
    "xoxb-": _repeat("xoxb-"),
    "xoxb-short": _repeat("xoxb-a "),
    "xapp-": _repeat("xapp-"),
    "authorization": _repeat("authorization: "),
    "authorization-bearer": _repeat("Authorization: Bearer "),
    "AKIA": _repeat("AKIA"),
    "ghp_": _repeat("ghp_"),
    "glpat-": _repeat("glpat-"),
    "hooks": _repeat("hooks.slack.com/services/"),
    "login": _repeat("login a "),
    "-u": _repeat("-u a:"),
    "whitespace": _repeat(" \t"),
    "newlines": _repeat("\n"),
    "base64": _repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0"),
    "backslashes": _repeat("\\"),
    "quotes": _repeat("\"'"),
    "literal-near-miss": _repeat("registered-secret-value"[:-1]),
    "mixed": _repeat('password="a.a:a@a://--token eyJa.-----BEGIN xoxb-AKIA '),
}


def _cpu(work: Callable[[str], object], text: str) -> float:
    """CPU seconds of work(text) (CPU time: other processes share the cores)."""
    t0 = time.process_time()
    work(text)
    return time.process_time() - t0


def test_every_rule_meets_hostile_input() -> None:
    # A rule added without hostile input of its own (it would not even run) fails here.
    for rule in redact_mod._RULES:
        assert any(rule.wanted(text, text.lower()) for text in HOSTILE.values()), rule.name


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_redaction_is_linear_on_hostile_input(name: str) -> None:
    """Quadratic behaviour on 1 MB would take minutes to hours; linear takes well under a
    second. The bound is relative to a linear baseline (a pattern matching every
    character) measured here, on the same text: a guard, not a speed goal."""
    register_secret("registered-secret-value")
    text = HOSTILE[name]
    every_char = re.compile(r"[\s\S]")
    baseline = _cpu(lambda t: every_char.sub("", t), text)
    bound = min(2.0, 50 * baseline)
    spent = _cpu(redact, text)
    if spent >= bound:  # a second chance, for a run slowed by something else
        spent = min(spent, _cpu(redact, text))
    assert spent < bound, f"{name}: {spent:.3f} s for 1 MB, baseline {baseline:.3f} s"


# ---- registered literals, extra patterns, settings -------------------------------------


def test_registered_secrets_are_masked_anywhere() -> None:
    register_secret("pa55-abcdefgh")
    register_secret("pa55-abcdefgh-and-longer")  # longest first: no tail left behind
    register_secret("short")  # under 8 characters: not registered
    out = redact("x=pa55-abcdefgh-and-longer y:pa55-abcdefgh zpa55-abcdefghz short")
    assert out == f"x={MASK} y:{MASK} z{MASK}z short"


@pytest.fixture
def no_extra_patterns() -> Iterator[None]:
    yield
    configure("")


def test_extra_patterns(no_extra_patterns: None) -> None:
    configure("\nINTERNAL-[0-9]{6}\n(ticket=)\\S+\n")
    assert redact("see INTERNAL-123456 and ticket=abc") == f"see {MASK} and ticket={MASK}"
    configure("")
    assert redact("INTERNAL-123456") == "INTERNAL-123456"


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ("ok\n\n(unclosed", "AURORA_RESTORE_REDACT line 3: missing ), unterminated subpattern"),
        ("[z-a]", "AURORA_RESTORE_REDACT line 1: bad character range z-a"),
        ("x*", "AURORA_RESTORE_REDACT line 1: matches the empty string"),
    ],
)
def test_bad_extra_pattern_is_named_and_changes_nothing(
    no_extra_patterns: None, patterns: str, message: str
) -> None:
    configure("KEEP-[0-9]{4}")
    with pytest.raises(ValueError, match=re.escape(message)):
        configure(patterns)
    assert redact("KEEP-1234") == MASK  # the earlier patterns are still in place


def _settings_env(tmp_path: Path, **over: str) -> dict[str, str]:
    f = tmp_path / "clusters.toml"
    f.write_text('[[clusters.west.schedulers]]\nhost = "sched1"\n')
    return {
        "SLACK_BOT_TOKEN": "xoxb-1-redact-test-token",
        "SLACK_SIGNING_SECRET": "signing-secret-for-redact-test",
        "AURORA_RESTORE_CLUSTERS": str(f),
        "HOME": str(tmp_path),
        **over,
    }


def test_settings_stop_on_a_bad_pattern(tmp_path: Path, no_extra_patterns: None) -> None:
    env = _settings_env(tmp_path, AURORA_RESTORE_REDACT="fine\n(bad")
    with pytest.raises(SettingsError, match=r"^AURORA_RESTORE_REDACT line 2: missing \)"):
        load(env)


def test_settings_register_the_bots_secrets(tmp_path: Path, no_extra_patterns: None) -> None:
    env = _settings_env(
        tmp_path,
        REDIS_URL="redis://default:r3dis%2Fpassw0rd@redis.internal:6379/0",
        AURORA_RESTORE_REDACT="CASE-[0-9]+",
    )
    load(env)
    out = redact("echo signing-secret-for-redact-test r3dis/passw0rd r3dis%2Fpassw0rd CASE-42")
    assert out == f"echo {MASK} {MASK} {MASK} {MASK}"


# ---- capping ------------------------------------------------------------------------------


def test_a_cut_drops_the_partial_line_it_lands_in() -> None:
    text = "password=hunter2hunter2 tail of a long line\n" + "ok\n" * 10
    out, cut = cap(text, len(text) - 3)  # lands inside "password"
    assert cut and "hunter2" not in out and out.endswith("ok\n")
    assert out.startswith("…[truncated]\n")


def test_redact_capped_caps_first_and_masks_a_key_cut_in_half() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "QUJDREVGR0hJSktMTU5PUFFS\n" * 100
    text = "x" * 5000 + "\n" + key + "-----END RSA PRIVATE KEY-----\nafter\n"
    out, cut = redact_capped(text, 1000)  # the tail starts in the key's body
    assert (
        cut
        and "QUJDREVG" not in out
        and out.endswith(f"{MASK}-----END RSA PRIVATE KEY-----\nafter\n")
    )
    assert len(out.encode()) <= 1000 + len("…[truncated]\n")


def test_redact_keeps_at_most_the_hard_limit() -> None:
    huge = "a" * (3 * MB) + "\npassword=hunter2\n"
    out = redact(huge, limit=MB)
    assert len(out.encode()) <= MB + 32 and out.endswith(f"password={MASK}\n")


# ---- logging ------------------------------------------------------------------------------


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)


def test_filter_redacts_the_formatted_message() -> None:
    record = _record("connect %s with %s", "redis://:s3cretpw@r:6379", "password=hunter2")
    assert RedactingFilter().filter(record)
    assert record.args == ()
    assert record.getMessage() == f"connect redis://:{MASK}@r:6379 with password={MASK}"


def test_filter_survives_bad_arguments_and_redacts_tracebacks() -> None:
    bad = _record("%d items, token=%s", "not-a-number")
    assert RedactingFilter().filter(bad)
    assert "%d items" in bad.getMessage() and "not-a-number" in bad.getMessage()
    try:
        raise RuntimeError("failed with password=hunter2")
    except RuntimeError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "hunter2" not in text and f"password={MASK}" in text


@pytest.fixture
def captured_root() -> Iterator[io.StringIO]:
    """A handler on the root logger; afterwards, the filters and levels that
    install_log_redaction changes are put back as they were."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root, ssh = logging.getLogger(), logging.getLogger("asyncssh")
    levels = (root.level, ssh.level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    targets: list[logging.Filterer] = [*root.handlers, ssh]
    if logging.lastResort is not None:
        targets.append(logging.lastResort)
    before = {id(t): list(t.filters) for t in targets}
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ssh.setLevel(levels[1])
        for t in targets:
            t.filters[:] = before[id(t)]


def test_install_log_redaction_on_asyncssh(captured_root: io.StringIO) -> None:
    ssh = logging.getLogger("asyncssh")
    ssh.setLevel(logging.DEBUG)
    install_log_redaction()
    install_log_redaction()  # twice: still one filter per handler
    assert ssh.level == logging.WARNING
    handler = logging.getLogger().handlers[-1]
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    ssh.info("[conn=0, chan=0] Command: %s", "mysql --password hunter1")
    ssh.warning("[conn=0, chan=0] Command: %s", "mysql --password hunter2")
    logging.getLogger("bot.ssh").warning("ran %s", "curl -u bob:hunter3 x")
    out = captured_root.getvalue()
    assert "hunter1" not in out  # INFO is below asyncssh's level now
    assert f"--password {MASK}" in out and "hunter2" not in out
    assert f"-u bob:{MASK}" in out and "hunter3" not in out
