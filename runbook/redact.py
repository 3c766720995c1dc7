"""Secrets out of everything stored or shown: command outputs, commands, summaries, logs.

Redaction happens before anything reaches Redis, a message, a log line or a transcript.
Three sources of secrets are masked:

- built-in shapes (the table `_RULES` below): PEM private keys, Authorization headers,
  credentials in URLs and bare `user:pass@host`, Slack/GitHub/GitLab tokens, Slack
  webhook URLs, AWS access key ids, JWTs, `password=`/`token:`/`"secret": "..."`-style
  assignments (the name stays visible, only the value is masked), `--password x`,
  netrc lines and `curl -u user:pass`;
- literal values registered at start-up with `register_secret` (the bot's own tokens);
- extra patterns given once at start-up with `configure` (AURORA_RESTORE_REDACT, one
  regex per line; when a pattern has groups, group 1 is kept and the rest of the match
  masked).

Everything is compiled once. Every built-in pattern is linear in its input (Python's `re`
backtracks, so this is by construction, and `tests/test_redact.py` guards it with 1 MB of
hostile text per pattern):

- each pattern starts with a literal (`xox`, `eyJ`, `://`, a keyword) or with a
  lookbehind that refuses to start inside a run of the characters its first repetition
  takes, so a run is entered once, not once per character;
- a repetition followed by something that may fail is bounded (`{0,64}`, `{1,512}`),
  so a failed attempt costs a constant; a repetition that ends a pattern may be
  unbounded (it succeeds as soon as it stops, no backtracking);
- where a repetition must not give back what it took, it is possessive (`{1,64}+`);
- no nested quantifiers, and alternatives inside a repetition start with different
  characters;
- each rule has trigger words; a rule whose words are absent from the (lower-cased) text
  is not run at all, so ordinary output pays a few substring scans.

`redact` keeps only the last `HARD_LIMIT` bytes (1 MiB) of its input before any pattern
sees it, so a pathological output can never be slow; callers that store a smaller tail
should use `redact_capped` (cap first, then redact). A cut drops the partial line (or
word) it lands in, so half a secret whose name was cut off is not kept either.

What is deliberately left alone (see the innocent table in tests/test_redact.py): names
that only contain a keyword (`password_file=/etc/x`, `token_ttl=5m`, `--password-file`,
`-shiro_credentials_matcher`), `PWD=/path` (a working directory), `user@host`,
`host:port`, `image:tag@sha256:...`, `docker -u 1000:1000`; `-p x` is too ambiguous to
mask.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

MASK = "[REDACTED]"
HARD_LIMIT = 1024 * 1024  # bytes `redact` keeps at most (the tail)
TRUNCATED = "…[truncated]\n"
MIN_SECRET = 8  # literal values shorter than this are not registered

Replace = Callable[[re.Match[str]], str]


@dataclass(frozen=True)
class _Rule:
    """One compiled pattern, the words one of which must occur for it to run (in the
    lower-cased text, or as written when a word has an upper-case letter), and how a
    match is replaced (see `_masker`)."""

    name: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...]
    replace: Replace

    def wanted(self, text: str, lowered: str) -> bool:
        return any(t in (text if t != t.lower() else lowered) for t in self.triggers)


def _masker(pattern: re.Pattern[str], keep_paths_after: str | None = None) -> Replace:
    """A replacement that masks the first `v*` group that took part in the match (the
    secret value) and keeps the rest; without `v*` groups, the whole match. With
    `keep_paths_after`, a match whose group `k` is that keyword (any case) and whose
    value is a path is kept: `PWD=/home/x` is a working directory, not a password."""
    values = [i for n, i in sorted(pattern.groupindex.items()) if n.startswith("v")]
    if not values:
        return lambda m: MASK

    def replace(m: re.Match[str]) -> str:
        for i in values:
            s, e = m.span(i)
            if s >= 0:
                break
        else:
            return MASK
        whole = m.group(0)
        if keep_paths_after is not None and m.group("k").lower() == keep_paths_after:
            if whole[s - m.start()] in "/~":
                return whole
        return whole[: s - m.start()] + MASK + whole[e - m.start() :]

    return replace


def _rule(
    name: str, pattern: str, triggers: tuple[str, ...], keep_paths_after: str | None = None
) -> _Rule:
    compiled = re.compile(pattern)
    return _Rule(name, compiled, triggers, _masker(compiled, keep_paths_after))


# A keyword ends the name it is in: `DB_PASSWORD`, `db.password`, `x-api-key`, `clientSecret`
# (but not `password_file`, `tokens`, `--password-file`); up to four digits may follow.
_KEYS = (
    r"(?P<k>(?i:p(?:ass(?:words?|wd|phrase)|wd|rivate[_-]?key)"
    r"|secret(?:[_-]?(?:key|string|value))?|token|a(?:pi|ccess)[_-]?key|credentials?))"
    r"[0-9]{0,4}+(?![A-Za-z0-9_-])"
)
# The same keywords spelt out, for the option rule: a lookbehind per spelling at the end
# of an option's name (fixed-width lookbehinds are O(1), where a search for the keyword
# inside each name would try every keyword at every position).
_SPELLINGS = [
    f"{head}{sep}{tail}"
    for head, tails in (
        ("secret", ("key", "string", "value")),
        ("api", ("key",)),
        ("access", ("key",)),
        ("private", ("key",)),
    )
    for tail in tails
    for sep in ("", "_", "-")
] + ["password", "passwords", "passwd", "passphrase", "pwd", "secret", "token", "credential"]
_ENDS_WITH_KEY = "(?>" + "|".join(f"(?<=(?i:{w}))" for w in _SPELLINGS + ["credentials"]) + ")"
# A value: "double-quoted" (also \"escaped\" inside JSON), 'single-quoted', or bare (up to
# whitespace, a quote, `,`, `;`, `&`, `<`; never `{`/`[`: a nested object, or a mask).
# It ends the pattern, so it may be unbounded: a value of any length is masked whole.
_VALUE = (
    r"""(?:\\"(?P<v0>[^"\\\n]+)"""
    r"""|"(?P<v1>(?:\\.|[^"\\\n])+)"""
    r"""|'(?P<v2>(?:\\.|[^'\\\n])+)"""
    r"""|(?![{\[])(?P<v3>[^\s'"`,;&<]+))"""
)
_PEM_END = r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"

_RULES: tuple[_Rule, ...] = (
    # PEM private keys: the BEGIN and END lines stay, the body is masked; without an END
    # within 16 KiB, the 16 KiB after BEGIN are (unless that is a mask already).
    _rule(
        "pem",
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        rf"(?:(?P<v1>[\s\S]{{0,16384}}?)(?={_PEM_END})|(?!\[REDACTED\])(?P<v2>[\s\S]{{1,16384}}))",
        ("private key",),
    ),
    # The end of a key whose beginning was cut off (a capped output starts mid-key): from
    # the start of the text to an END line with no BEGIN line before it.
    _rule(
        "pem-tail",
        rf"\A(?:…\[truncated\]\n)?(?P<v1>(?:[^-]|-(?!----BEGIN)){{1,16384}}?)(?={_PEM_END})",
        ("-----end",),
    ),
    # Authorization / Proxy-Authorization headers (the scheme stays visible).
    _rule(
        "authorization",
        r"(?i)\bauthorization[\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"']?"
        r"(?:(?:basic|bearer|negotiate|token|digest|ntlm|aws4-hmac-sha256)[ \t]{1,8})?"
        r"(?P<v1>[^\s'\"]+)",
        ("authorization",),
    ),
    # scheme://user:password@host (the user may be empty: redis://:pw@host).
    _rule(
        "url-credentials",
        r"(?i)(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,31}://[^\s/?#@:'\"]{0,256}:"
        r"(?P<v1>[^\s/?#'\"]{1,512})(?=@)",
        ("://",),
    ),
    # Slack tokens (bot, user, app-level, refresh) and incoming-webhook URLs.
    _rule("slack-token", r"\bxox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]{10,}", ("xox",)),
    _rule("slack-app-token", r"\bxapp-[A-Za-z0-9-]{10,}", ("xapp-",)),
    _rule(
        "slack-webhook",
        r"(?i)\bhooks\.slack\.com/(?:services|workflows|triggers)/(?P<v1>[A-Za-z0-9/_-]{8,})",
        ("hooks.slack.com",),
    ),
    # AWS access key ids: long-term (AKIA), temporary/STS (ASIA), and the rarer ABIA/ACCA.
    _rule(
        "aws-key-id", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b", ("AKIA", "ASIA", "ABIA", "ACCA")
    ),
    # GitHub and GitLab tokens.
    _rule(
        "github-token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _rule("gitlab-token", r"\bglpat-[A-Za-z0-9_-]{20,}", ("glpat-",)),
    # JWTs: header.payload.signature, both JSON parts base64url of `{"`.
    _rule(
        "jwt",
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
        ("eyj",),
    ),
    # name=value, name: value, "name": "value", name => 'value', <name>value</name>.
    _rule(
        "assignment",
        _KEYS + r"""\\?["']?[ \t]{0,8}(?::=|=>|==?|:(?!:)|>)[ \t]{0,8}""" + _VALUE,
        ("pass", "pwd", "secret", "token", "key", "credential"),
        keep_paths_after="pwd",
    ),
    # --password x, --db-password "x", -token x (the value does not start with `-`).
    _rule(
        "cli-option",
        r"(?<![\w-])-{1,2}[A-Za-z0-9_.-]{1,64}+" + _ENDS_WITH_KEY + r"[ \t]{1,8}+(?!-)" + _VALUE,
        ("pass", "pwd", "secret", "token", "key", "credential"),
    ),
    # .netrc: machine h login u password p
    _rule(
        "netrc",
        r"(?i)\blogin[ \t]{1,8}[^\s]{1,256}[ \t]{1,8}password[ \t]{1,8}(?P<v1>\S+)",
        ("login",),
    ),
    # curl -u user:password (not docker's -u 1000:1000).
    _rule(
        "user-option",
        r"(?<![\w-])(?:-u|--user)[ \t]{1,8}[\"']?[^\s:'\"]{1,256}:"
        r"(?![0-9]{1,10}(?:[\s'\"]|\Z))(?P<v1>[^\s'\"]+)",
        ("-u", "--user"),
    ),
    # Bare user:password@host (not image:tag@sha256:..., not user@host, not host:port).
    _rule(
        "bare-credentials",
        r"(?<![\w.:/@%+-])[A-Za-z0-9_.+-]{1,64}:(?P<v1>[^\s/@'\"]{1,256})"
        r"(?=@(?!sha[0-9]{3}:)[\w\[])",
        ("@",),
    ),
)

_literals: re.Pattern[str] | None = None  # registered secret values, longest first
_secrets: set[str] = set()
_extra: tuple[re.Pattern[str], ...] = ()  # AURORA_RESTORE_REDACT, compiled by configure()


def register_secret(value: str) -> None:
    """Mask this literal value wherever it appears from now on (the bot's own tokens,
    the password inside REDIS_URL). Values shorter than MIN_SECRET characters are ignored:
    they would mask ordinary words."""
    global _literals
    value = value.strip()
    if len(value) < MIN_SECRET or value in _secrets:
        return
    _secrets.add(value)
    ordered = sorted(_secrets, key=len, reverse=True)
    _literals = re.compile("|".join(re.escape(s) for s in ordered))


def configure(extra_patterns: str) -> None:
    """Compile AURORA_RESTORE_REDACT (one regex per line, blank lines ignored) once, in
    place of any earlier call's. An invalid pattern, or one that matches the empty string
    (it would mask between every character), raises ValueError naming its line and
    leaves the earlier patterns in place."""
    global _extra
    compiled: list[re.Pattern[str]] = []
    for number, line in enumerate(extra_patterns.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pattern = re.compile(line)
        except re.error as exc:
            raise ValueError(f"AURORA_RESTORE_REDACT line {number}: {exc}") from None
        if pattern.fullmatch(""):
            raise ValueError(f"AURORA_RESTORE_REDACT line {number}: matches the empty string")
        compiled.append(pattern)
    _extra = tuple(compiled)


def _drop_fragment(tail: str) -> str:
    """A tail cut from a longer text starts mid-line: drop that partial line (when it ends
    within 4 KiB) or else the partial word (within 512 characters), so a secret whose name
    was cut off is not kept half-visible."""
    nl = tail.find("\n", 0, 4096)
    if nl >= 0:
        return tail[nl + 1 :]
    ws = _WHITESPACE.search(tail, 0, 513)
    return tail[ws.end() :] if ws else tail


_WHITESPACE = re.compile(r"\s")


def cap(text: str, limit: int) -> tuple[str, bool]:
    """The tail of text within `limit` bytes (the end of an output matters most), and
    whether it was cut; a cut drops the partial line it lands in (see `_drop_fragment`)."""
    if len(text) * 4 <= limit:  # no UTF-8 text of this length can exceed the limit
        return text, False
    data = text.encode(errors="surrogatepass")  # a lone surrogate must not raise
    if len(data) <= limit:
        return text, False
    return TRUNCATED + _drop_fragment(data[-limit:].decode(errors="ignore")), True


def _apply(text: str) -> str:
    """Every rule whose trigger words occur, then the literals, then the extra patterns."""
    if _literals is not None:
        text = _literals.sub(MASK, text)
    lowered = text.lower()
    for rule in _RULES:
        if rule.wanted(text, lowered):
            text = rule.pattern.sub(rule.replace, text)
    for pattern in _extra:
        if pattern.groups:
            text = pattern.sub(lambda m: (m.group(1) or "") + MASK, text)
        else:
            text = pattern.sub(MASK, text)
    return text


def redact(text: str, limit: int = HARD_LIMIT) -> str:
    """Text with every secret masked. Only the last `limit` bytes are kept (cut first, so
    no pattern ever sees more); below the limit, nothing but the secrets changes."""
    text, _cut = cap(text, limit)
    return _apply(text)


def redact_capped(text: str, limit: int) -> tuple[str, bool]:
    """The tail of text within `limit` bytes, redacted, and whether it was cut: capped
    before redaction (so a huge output costs no more than its tail) and again after (a
    mask may be longer than what it hides)."""
    capped, cut = cap(text, limit)
    out, cut_again = cap(_apply(capped), limit)
    return out, cut or cut_again


class RedactingFilter(logging.Filter):
    """Redacts a record's final message (msg % args, formatted here, then args cleared),
    its traceback and its stack; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line, nor show args raw
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(asyncssh_level: int = logging.WARNING) -> RedactingFilter:
    """Attach one RedactingFilter to the root logger's handlers (call it after
    logging.basicConfig), to logging's last-resort handler and to the `asyncssh` logger,
    and set that logger to `asyncssh_level`: at INFO it logs every command it runs.
    Calling it again adds no second filter."""
    found = [
        f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, RedactingFilter)
    ]
    the_filter = found[0] if found else RedactingFilter()
    targets: list[logging.Handler | logging.Logger] = list(logging.getLogger().handlers)
    if logging.lastResort is not None:
        targets.append(logging.lastResort)
    ssh = logging.getLogger("asyncssh")
    ssh.setLevel(asyncssh_level)
    targets.append(ssh)
    for target in targets:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(the_filter)
    return the_filter
