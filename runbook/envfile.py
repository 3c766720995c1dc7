"""The scheduler's environment file, edited on its raw text so that its meaning is kept.

Two layouts exist (apache/aurora-packaging; docs/aurora-notes.md §F8):

- Debian: `/etc/default/aurora-scheduler` (`specs/debian/aurora-scheduler.default`) holds
  plain variables. `aurora-scheduler-startup` (`specs/debian/aurora-scheduler.startup.sh`)
  `source`s it in bash and runs the scheduler with fixed flags built from the variables
  (`-mesos_master_address="$MESOS_MASTER"`, ...) followed by `$EXTRA_SCHEDULER_ARGS`
  *unquoted*: its value, after bash expanded `$(...)`, `${...}` and backticks at the
  assignment, is split on whitespace and globbed.
- RPM: `/etc/sysconfig/aurora-scheduler` (`specs/rpm/aurora.sysconfig`) holds a bash array
  `AURORA_FLAGS=( ... )`, and `specs/rpm/aurora-scheduler.startup.sh` runs the scheduler
  with `"${AURORA_FLAGS[@]}"`.

Nothing is re-quoted or re-joined: the file is read into words with their byte offsets
(a small lexer of the bash that such files use), and an edit replaces only the characters
of the flag words it changes (and, on Debian, `MESOS_MASTER`'s value). Every other byte
(comments, other variables, quoting, `$(...)`, `${VAR}`, backticks, `\\`-newline, the
trailing newline or its absence) stays as it was. Where the meaning could change (an
expansion that could become one of the edited flags, an expansion inside a flag to edit,
an assignment inside `if`/`export`/a function, ...) the edit is refused with one line
naming the line of the file and why.

A flag given twice aborts the scheduler's start (docs/aurora-notes.md §F2), so each flag is replaced
where it stands (`-f=v` and `-f v` forms) and added only when absent.

`argv_script`/`parse_argv`/`argv_changes` are the dynamic check: the integrator runs the
script on the host with bash over the file before and after an edit and compares the
scheduler's argv word for word.
"""

from __future__ import annotations

import bisect
import dataclasses
import difflib
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

Flavour = Literal["debian", "rpm"]

BOGUS_MASTER = "zk://localhost:1111/mesos/master"
DISABLE_FLAGS = {
    "-max_registration_delay": "360mins",
    "-reconciliation_initial_delay": "365days",
}
AUTH_FLAG = "-http_authentication_mechanism"
MASTER_FLAG = "-mesos_master_address"

DISABLED_ARGV: dict[str, str | None] = {MASTER_FLAG: BOGUS_MASTER, **DISABLE_FLAGS}
NO_AUTH_ARGV: dict[str, str | None] = {AUTH_FLAG: None}

EXTRA = "EXTRA_SCHEDULER_ARGS"
MASTER = "MESOS_MASTER"
FLAGS = "AURORA_FLAGS"
TARGETS = (EXTRA, MASTER, FLAGS)

# Every flag an edit here touches: an expansion that could become one of them is refused.
EDITED_FLAGS = (MASTER_FLAG, *DISABLE_FLAGS, AUTH_FLAG)

# The fixed flags of Debian's aurora-scheduler-startup, in its order, with their variables
# (apache/aurora-packaging specs/debian/aurora-scheduler.startup.sh).
DEBIAN_FIXED_FLAGS = (
    ("-cluster_name", "CLUSTER_NAME"),
    ("-http_port", "HTTP_PORT"),
    ("-native_log_quorum_size", "QUORUM_SIZE"),
    ("-zk_endpoints", "ZK_ENDPOINTS"),
    ("-mesos_master_address", "MESOS_MASTER"),
    ("-serverset_path", "ZK_SERVERSET_PATH"),
    ("-native_log_zk_group_path", "ZK_LOGDB_PATH"),
    ("-native_log_file_path", "LOGDB_FILE_PATH"),
    ("-backup_dir", "BACKUP_DIR"),
    ("-thermos_executor_path", "THERMOS_EXECUTOR_PATH"),
    ("-thermos_executor_resources", "THERMOS_EXECUTOR_RESOURCES"),
    ("-thermos_executor_flags", "THERMOS_EXECUTOR_FLAGS"),
    ("-allowed_container_types", "ALLOWED_CONTAINER_TYPES"),
)

# settings() key -> (Debian variable, RPM flag)
SETTINGS = {
    "log_dir": ("LOGDB_FILE_PATH", "-native_log_file_path"),
    "backup_dir": ("BACKUP_DIR", "-backup_dir"),
    "quorum": ("QUORUM_SIZE", "-native_log_quorum_size"),
}

_REFUSE = "cannot be edited without changing its meaning; edit it by hand"


class EnvFileError(ValueError):
    """The file cannot be read or edited without changing its meaning (one line, with the line number)."""


# --------------------------------------------------------------------------- lexer


@dataclass
class _Piece:
    """One character of a word as bash sees it after quote removal, or one expansion.

    `cooked` is the character (None for an expansion or anything else whose value is not
    in the text); `start`/`end` its bytes in the file; `ctx` the quoting it stands in:
    u(nquoted), d(ouble), s(ingle), a (`$'...'`). `split`: an unknown that may become
    several words (or none).
    """

    start: int
    end: int
    cooked: str | None
    ctx: str
    param: str | None = None
    split: bool = False
    bad: bool = False  # a `${...}` bash refuses ("bad substitution"): the command fails


@dataclass
class _Segment:
    """A run of the word in one quoting: `"..."`, `'...'`, `$'...'`, or unquoted text."""

    ctx: str
    start: int
    end: int
    inner_start: int
    inner_end: int


@dataclass
class _Word:
    start: int
    end: int
    line: int
    pieces: list[_Piece]
    segments: list[_Segment]
    elements: list[_Word] | None = None  # NAME=( ... ): the array's words
    lparen: int = -1
    rparen: int = -1


@dataclass
class _Op:
    op: str
    start: int
    line: int


@dataclass
class _Newline:
    start: int
    line: int


_Token = _Word | _Op | _Newline

_META = frozenset(" \t\n|&;()<>")
_OPS = (
    "<<<", "<<-", "&>>", ";;&", ";;", ";&", "&&", "||", "|&", "<<", ">>", "<&", ">&", "<>",
    ">|", "&>", "|", "&", ";", "(", ")", "<", ">",
)  # fmt: skip
_REDIRECTS = frozenset({"<<<", "<<-", "&>>", "<<", ">>", "<&", ">&", "<>", ">|", "&>", "<", ">"})
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What bash accepts inside `${...}`: a parameter, then an operator and its word.
_BRACE_RE = re.compile(
    r"[#!]?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(?:\[[^\]]*\])?"
    r"(?:[*@]|(?::?[-=?+]|##?|%%?|//?|/[#%]|\^\^?|,,?|:|@).*)?",
    re.S,
)
_ASSIGN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\[[^\]\n]*\])?(\+?)=")
_ANSI = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b",
         "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}  # fmt: skip


class _Lexer:
    """Words, operators and newlines of a bash file, with byte offsets and line numbers."""

    def __init__(self, text: str) -> None:
        self.t = text
        self.n = len(text)
        self.i = 0
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.heredocs: list[tuple[str, bool]] = []
        self.open_heredoc = False

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos)

    def fail(self, pos: int, why: str) -> EnvFileError:
        return EnvFileError(f"line {self.line(pos)}: {why}")

    def run(self) -> list[_Token]:
        t = self.t
        out: list[_Token] = []
        want_delim: str | None = None
        while self.i < self.n:
            c = t[self.i]
            if c in " \t":
                self.i += 1
            elif c == "\\" and t.startswith("\n", self.i + 1):
                self.i += 2
            elif c == "\n":
                out.append(_Newline(self.i, self.line(self.i)))
                self.i += 1
                self._heredoc_bodies()
            elif c == "#":
                j = t.find("\n", self.i)
                self.i = self.n if j < 0 else j
            elif c in _META:
                op = next(o for o in _OPS if t.startswith(o, self.i))
                out.append(_Op(op, self.i, self.line(self.i)))
                self.i += len(op)
                if op in ("<<", "<<-"):
                    want_delim = op
            else:
                word = self.word(arrays=True)
                if want_delim:
                    delim = "".join(p.cooked or t[p.start : p.end] for p in word.pieces)
                    self.heredocs.append((delim, want_delim == "<<-"))
                    want_delim = None
                out.append(word)
        if self.heredocs:
            self.open_heredoc = True
        return out

    def _heredoc_bodies(self) -> None:
        t = self.t
        for delim, strip in self.heredocs:
            while self.i < self.n:
                j = t.find("\n", self.i)
                end = self.n if j < 0 else j
                line = t[self.i : end]
                self.i = min(end + 1, self.n)
                if (line.lstrip("\t") if strip else line) == delim:
                    break
            else:
                self.open_heredoc = True
        self.heredocs = []

    def word(self, arrays: bool) -> _Word:
        start = self.i
        pieces: list[_Piece] = []
        segs: list[_Segment] = []
        t = self.t
        while self.i < self.n and t[self.i] not in _META:
            c = t[self.i]
            if c == "\\":
                if self.i + 1 >= self.n:
                    self._unquoted(pieces, segs, _Piece(self.i, self.i + 1, "\\", "u"))
                    self.i += 1
                elif t[self.i + 1] == "\n":
                    self.i += 2
                else:
                    self._unquoted(pieces, segs, _Piece(self.i, self.i + 2, t[self.i + 1], "u"))
                    self.i += 2
            elif c == "'":
                self._single(pieces, segs)
            elif c == '"':
                self._double(pieces, segs, self.i, self.i + 1)
            elif c == "$" and t.startswith("'", self.i + 1):
                self._ansi(pieces, segs)
            elif c == "$" and t.startswith('"', self.i + 1):
                self._double(pieces, segs, self.i, self.i + 2)
            elif c in "$`":
                piece = self._expansion("u")
                if piece is None:
                    piece = _Piece(self.i, self.i + 1, "$", "u")
                    self.i += 1
                self._unquoted(pieces, segs, piece)
            else:
                self._unquoted(pieces, segs, _Piece(self.i, self.i + 1, c, "u"))
                self.i += 1
        ends = [p.end for p in pieces] + [s.end for s in segs]
        word = _Word(start, max(ends, default=start), self.line(start), pieces, segs)
        assign = _assignment(word)
        if arrays and assign and assign[1] == self.i and t.startswith("(", self.i):
            self._array(word)
        return word

    @staticmethod
    def _unquoted(pieces: list[_Piece], segs: list[_Segment], piece: _Piece) -> None:
        pieces.append(piece)
        if segs and segs[-1].ctx == "u":
            segs[-1].end = segs[-1].inner_end = piece.end
        else:
            segs.append(_Segment("u", piece.start, piece.end, piece.start, piece.end))

    def _single(self, pieces: list[_Piece], segs: list[_Segment]) -> None:
        start = self.i
        end = self.t.find("'", start + 1)
        if end < 0:
            raise self.fail(start, "unterminated single quote")
        pieces += [_Piece(k, k + 1, self.t[k], "s") for k in range(start + 1, end)]
        segs.append(_Segment("s", start, end + 1, start + 1, end))
        self.i = end + 1

    def _double(self, pieces: list[_Piece], segs: list[_Segment], start: int, inner: int) -> None:
        t = self.t
        self.i = inner
        while True:
            if self.i >= self.n:
                raise self.fail(start, "unterminated double quote")
            c = t[self.i]
            if c == '"':
                break
            if c == "\\":
                nxt = t[self.i + 1 : self.i + 2]
                if nxt == "\n":
                    self.i += 2
                elif nxt and nxt in '$`"\\':
                    pieces.append(_Piece(self.i, self.i + 2, nxt, "d"))
                    self.i += 2
                else:
                    pieces.append(_Piece(self.i, self.i + 1, "\\", "d"))
                    self.i += 1
                continue
            piece = self._expansion("d") if c in "$`" else None
            if piece is None:
                pieces.append(_Piece(self.i, self.i + 1, c, "d"))
                self.i += 1
            else:
                pieces.append(piece)
        segs.append(_Segment("d", start, self.i + 1, inner, self.i))
        self.i += 1

    def _ansi(self, pieces: list[_Piece], segs: list[_Segment]) -> None:
        t, start = self.t, self.i
        self.i += 2
        while True:
            if self.i >= self.n:
                raise self.fail(start, "unterminated $'")
            c = t[self.i]
            if c == "'":
                break
            if c == "\\" and self.i + 1 < self.n:
                pieces.append(_Piece(self.i, self.i + 2, _ANSI.get(t[self.i + 1]), "a"))
                self.i += 2
            else:
                pieces.append(_Piece(self.i, self.i + 1, c, "a"))
                self.i += 1
        segs.append(_Segment("a", start, self.i + 1, start + 2, self.i))
        self.i += 1

    def _expansion(self, ctx: str) -> _Piece | None:
        """`$NAME`, `${...}`, `$(...)`, `$((...))`, backticks, `$1`...; None for a lone `$`."""
        t, i = self.t, self.i
        if t[i] == "`":
            end = self._skip_backtick(i + 1, i)
            param = None
        elif t.startswith("$((", i):
            end, param = self._skip_arith(i + 3, i), None
        elif t.startswith("$(", i):
            end, param = self._skip_cmd(i + 2, i), None
        elif t.startswith("${", i):
            end = self._skip_brace(i + 2, i)
            inner = t[i + 2 : end - 1]
            param = inner if _NAME_RE.fullmatch(inner) else None
            if not _BRACE_RE.fullmatch(inner):
                self.i = end
                return _Piece(i, end, None, ctx, None, bad=True)
        else:
            m = _NAME_RE.match(t, i + 1)
            if m:
                end, param = m.end(), m.group()
            elif i + 1 < self.n and t[i + 1] in "0123456789@*#?$!-":
                end, param = i + 2, None
            else:
                return None
        self.i = end
        return _Piece(i, end, None, ctx, param)

    def _skip_cmd(self, j: int, start: int) -> int:
        t, depth = self.t, 1
        while j < self.n:
            c = t[j]
            if c == "\\":
                j += 2
                continue
            if c == "'":
                k = t.find("'", j + 1)
                if k < 0:
                    break
                j = k + 1
                continue
            if c == '"':
                j = self._skip_double(j + 1, start)
                continue
            if c == "`":
                j = self._skip_backtick(j + 1, start)
                continue
            if c == "#" and t[j - 1] in " \t\n;(|&":
                k = t.find("\n", j)
                j = self.n if k < 0 else k
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        raise self.fail(start, "unterminated $(")

    def _skip_double(self, j: int, start: int) -> int:
        t = self.t
        while j < self.n:
            c = t[j]
            if c == "\\":
                j += 2
            elif c == '"':
                return j + 1
            elif t.startswith("$(", j):
                j = self._skip_cmd(j + 2, start)
            elif t.startswith("${", j):
                j = self._skip_brace(j + 2, start)
            elif c == "`":
                j = self._skip_backtick(j + 1, start)
            else:
                j += 1
        raise self.fail(start, "unterminated double quote")

    def _skip_backtick(self, j: int, start: int) -> int:
        t = self.t
        while j < self.n:
            if t[j] == "\\":
                j += 2
            elif t[j] == "`":
                return j + 1
            else:
                j += 1
        raise self.fail(start, "unterminated backtick")

    def _skip_brace(self, j: int, start: int) -> int:
        t, depth = self.t, 1
        while j < self.n:
            c = t[j]
            if c == "\\":
                j += 2
                continue
            if c == '"':
                j = self._skip_double(j + 1, start)
                continue
            if t.startswith("$(", j):
                j = self._skip_cmd(j + 2, start)
                continue
            if c == "`":
                j = self._skip_backtick(j + 1, start)
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        raise self.fail(start, "unterminated ${")

    def _skip_arith(self, j: int, start: int) -> int:
        t, depth = self.t, 2
        while j < self.n:
            if t[j] == "(":
                depth += 1
            elif t[j] == ")":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        raise self.fail(start, "unterminated $((")

    def _array(self, word: _Word) -> None:
        t = self.t
        word.lparen = self.i
        self.i += 1
        elements = []
        while True:
            if self.i >= self.n:
                raise self.fail(word.start, "unterminated array (")
            c = t[self.i]
            if c in " \t\n":
                self.i += 1
            elif c == "\\" and t.startswith("\n", self.i + 1):
                self.i += 2
            elif c == "#":
                j = t.find("\n", self.i)
                self.i = self.n if j < 0 else j
            elif c == ")":
                break
            elif c in _META:
                raise self.fail(self.i, f"unexpected {c!r} inside an array")
            else:
                elements.append(self.word(arrays=False))
        word.rparen = self.i
        self.i += 1
        word.end = self.i
        word.elements = elements


# --------------------------------------------------------------------------- commands


@dataclass
class _Command:
    """A simple command: its words, where it stands, and what separates it from the rest."""

    words: list[_Word]
    line: int
    within: str  # the innermost compound it stands in ("" at top level)
    before: str
    after: str = "eof"
    others: list[_Word] = field(default_factory=list)  # redirection targets

    @property
    def clean(self) -> bool:
        """Runs once, in the sourcing shell, unconditionally: its assignments persist."""
        return (
            not self.within
            and self.before in ("start", "\n", ";")
            and self.after in ("\n", ";", "eof")
            and not self.others
        )


_OPENERS = frozenset({"if", "case", "for", "select", "while", "until", "{"})
_CLOSERS = frozenset({"fi", "esac", "done", "}"})
_KEYWORDS = frozenset({"then", "do", "else", "elif", "!", "time", "in", "function"})
_WITHIN = {"if": "an if", "case": "a case", "for": "a loop", "select": "a loop",
           "while": "a loop", "until": "a loop", "{": "a { } block or function",
           "(": "a subshell or function"}  # fmt: skip


def _commands(text: str, tokens: list[_Token]) -> tuple[list[_Command], set[str], bool]:
    """The simple commands; the names of the functions the file defines; whether all closed."""
    stack: list[str] = []
    out: list[_Command] = []
    functions: set[str] = set()
    cur: _Command | None = None
    before, redirect, function_name = "start", False, False

    def flush(after: str) -> None:
        nonlocal cur
        if cur is not None:
            cur.after = after
            out.append(cur)
            cur = None

    for k, tok in enumerate(tokens):
        if isinstance(tok, _Word):
            raw = text[tok.start : tok.end]
            if redirect:
                redirect = False
                if cur is None:
                    cur = _Command(
                        [], tok.line, _WITHIN.get(stack[-1], "") if stack else "", before
                    )
                cur.others.append(tok)
                continue
            if function_name:
                function_name = False
                functions.add(raw)
                continue
            if cur is None and raw in _OPENERS | _CLOSERS | _KEYWORDS:
                if raw in _OPENERS:
                    stack.append(raw)
                elif raw in _CLOSERS and stack:
                    stack.pop()
                function_name = raw == "function"
                before = raw
                continue
            if cur is None:
                cur = _Command([], tok.line, _WITHIN.get(stack[-1], "") if stack else "", before)
            cur.words.append(tok)
        elif isinstance(tok, _Newline):
            if cur is None and before in ("|", "|&", "&&", "||"):
                continue  # the list goes on on the next line
            flush("\n")
            before = "\n"
        elif tok.op in _REDIRECTS:
            redirect = True
            if cur is None:
                cur = _Command([], tok.line, _WITHIN.get(stack[-1], "") if stack else "", before)
        elif tok.op == "(":
            if cur is not None and len(cur.words) == 1:
                nxt = tokens[k + 1] if k + 1 < len(tokens) else None
                if isinstance(nxt, _Op) and nxt.op == ")":
                    functions.add(text[cur.words[0].start : cur.words[0].end])
            flush("(")
            stack.append("(")
            before = "("
        elif tok.op == ")":
            flush(")")
            if stack and stack[-1] == "(":
                stack.pop()
            before = ")"
        else:
            flush(tok.op)
            before = tok.op
    flush("eof")
    return out, functions, not stack


# --------------------------------------------------------------------------- analysis


@dataclass
class _Assign:
    name: str
    word: _Word
    command: _Command
    value_start: int
    plus: bool
    index: bool
    via: str = ""  # the declaration builtin (export, declare, ...) it is an argument of


@dataclass
class _Item:
    """One word of the scheduler's argv as the file spells it (a split of
    EXTRA_SCHEDULER_ARGS, or an element of AURORA_FLAGS)."""

    pieces: list[_Piece]
    line: int
    start: int
    end: int
    first: int = 0  # index of its first piece in the container's piece list
    stop: int = 0


@dataclass
class _Edit:
    start: int
    end: int
    new: str


def _assignment(w: _Word) -> tuple[re.Match[str], int] | None:
    """`NAME=`, `NAME+=` or `NAME[...]=` at the start of the word, as bash reads it (a
    `\\`-newline inside is no character; a quoted or escaped character ends it), and where
    the value starts."""
    chars = []
    for p in w.pieces:
        if p.ctx != "u" or p.cooked is None or p.end - p.start != 1:
            return None
        chars.append(p.cooked)
        if p.cooked == "=":
            m = _ASSIGN_RE.fullmatch("".join(chars))
            return (m, p.end) if m else None
    return None


def _split_assigns(text: str, cmd: _Command) -> tuple[list[_Assign], list[_Word]]:
    assigns: list[_Assign] = []
    for k, w in enumerate(cmd.words):
        found = _assignment(w)
        if found is None:
            return assigns, cmd.words[k:]
        m, value_start = found
        assigns.append(_Assign(m[1], w, cmd, value_start, bool(m[3]), bool(m[2])))
    return assigns, []


def _joined(text: str, w: _Word) -> str:
    """The word's text with its `\\`-newlines taken out, to look for names in."""
    return text[w.start : w.end].replace("\\\n", "")


def _raw(text: str, start: int, end: int) -> str:
    raw = text[start:end].replace("\n", "\\n")
    return raw if len(raw) <= 80 else raw[:77] + "..."


@dataclass
class _File:
    text: str
    commands: list[_Command]
    functions: set[str]
    closed: bool
    open_heredoc: bool
    assigns: list[_Assign]
    problems: dict[str, list[str]]  # per target variable (and "IFS"): why it cannot be edited
    flavour: Flavour | None
    starts: list[int]

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos)

    def clean_assign(self, name: str) -> _Assign | None:
        """The one plain top-level assignment of a target (None when there is none)."""
        found = [a for a in self.assigns if a.name == name and a.command.clean and not a.via]
        return found[0] if len(found) == 1 else None


_DECLARING = ("export", "declare", "typeset", "local", "readonly")
_HAND = "edit it by hand"


def _analyse(text: str) -> _File:
    """Read the file: its commands, every assignment, and per target variable (and IFS)
    each reason an edit of it would not keep the file's meaning."""
    lexer = _Lexer(text)
    commands, functions, closed = _commands(text, lexer.run())
    assigns: list[_Assign] = []
    problems: dict[str, list[str]] = {name: [] for name in (*TARGETS, "IFS")}
    for cmd in commands:
        leading, rest = _split_assigns(text, cmd)
        verb = text[rest[0].start : rest[0].end] if rest else ""
        declared = _declared(text, cmd, rest, verb) if verb in _DECLARING else []
        assigns += leading + declared
        for name, line, why in (
            *_assignment_problems(cmd, leading, declared, verb),
            *_naming_problems(text, rest, verb),
            *_reference_problems(text, cmd),
        ):
            problems[name].append(f"line {line}: {why}")
    for a in assigns:
        if a.name == "IFS" and not a.via:
            problems["IFS"].append(
                f"line {a.word.line}: IFS is assigned: how {EXTRA} splits into words cannot be known; {_HAND}"
            )
    for name in TARGETS:
        plain = [a for a in assigns if a.name == name and a.command.clean and not a.via]
        if len(plain) > 1:
            lines = " and ".join(str(a.word.line) for a in plain)
            problems[name].append(
                f"line {plain[1].word.line}: {name} is assigned twice (lines {lines}): fix the file by hand first"
            )
    flavour: Flavour | None = None
    if any(a.name == FLAGS and a.word.elements is not None for a in assigns):
        flavour = "rpm"
    elif any(a.name in (MASTER, EXTRA) for a in assigns):
        flavour = "debian"
    return _File(
        text,
        commands,
        functions,
        closed,
        lexer.open_heredoc,
        assigns,
        problems,
        flavour,
        lexer.starts,
    )


_Problem = tuple[str, int, str]  # (variable, line, why)


def _assignment_problems(
    cmd: _Command, leading: list[_Assign], declared: list[_Assign], verb: str
) -> Iterator[_Problem]:
    """A target assigned anywhere but in a plain top-level `NAME=value` statement."""
    for a in leading:
        if a.name not in TARGETS:
            continue
        if verb:
            how = f"as a prefix to a command ({verb})"
        elif cmd.within:
            how = f"inside {cmd.within}"
        elif not cmd.clean:
            sep = cmd.before if cmd.before not in ("start", "\n", ";") else cmd.after
            how = f"in a list, pipeline or background job (next to {sep!r})"
        elif a.plus:
            how = "with +="
        elif a.index:
            how = "by index"
        else:
            continue
        yield a.name, a.word.line, f"{a.name} is assigned {how}: {_REFUSE}"
    for d in declared:
        if d.name in TARGETS or d.name == "IFS":
            yield d.name, d.word.line, f"{d.name} is assigned inside {verb}: {_REFUSE}"


def _naming_problems(text: str, rest: list[_Word], verb: str) -> Iterator[_Problem]:
    """A target named by a command (`unset`, `read`, `declare -r`, `eval "NAME=..."`, ...)."""
    for w in rest:
        raw = _joined(text, w)
        for name in (*TARGETS, "IFS"):
            if verb == "export" and raw == name:
                continue  # `export NAME` changes no value
            if verb in _DECLARING and _assignment(w):
                continue  # an assignment argument: _assignment_problems
            if re.search(rf"(?<![A-Za-z0-9_$\{{]){name}(?![A-Za-z0-9_])", raw):
                yield (
                    name,
                    w.line,
                    f"{name} is named by a command ({verb}): its value cannot be known; {_HAND}",
                )


def _reference_problems(text: str, cmd: _Command) -> Iterator[_Problem]:
    """A target read elsewhere: an edit of it would change more than the scheduler's flags."""
    for w in _all_words(cmd):
        raw = _joined(text, w)
        for name in TARGETS:
            if re.search(rf"\$\{{?[#!]?{name}(?![A-Za-z0-9_])", raw):
                yield (
                    name,
                    w.line,
                    f"{name} is referenced: changing it would change more than the scheduler's flags; {_HAND}",
                )


def _all_words(cmd: _Command) -> Iterator[_Word]:
    for w in (*cmd.words, *cmd.others):
        yield w
        yield from w.elements or ()


# --------------------------------------------------------------------------- values


def _eval(pieces: Iterable[_Piece], env: Mapping[str, str], array: bool = False) -> str | None:
    """The value bash gives these pieces (no word splitting), or None when not known from the text.

    `array`: the pieces are an array element, which bash also splits and globs.
    """
    out = []
    for p in pieces:
        if p.cooked is not None:
            if p.ctx == "u" and (p.cooked == "~" or (array and p.cooked in "*?[")):
                return None
            out.append(p.cooked)
        elif p.param is not None and p.param in env:
            value = env[p.param]
            if array and p.ctx == "u" and (not value or re.search(r"[\s*?\[]", value)):
                return None
            out.append(value)
        else:
            return None
    return "".join(out)


def _declared(text: str, cmd: _Command, rest: list[_Word], verb: str) -> list[_Assign]:
    """The NAME=value arguments of a declaration builtin (export, declare, ...)."""
    out = []
    for w in rest[1:]:
        found = _assignment(w)
        if found is not None:
            m, value_start = found
            out.append(_Assign(m[1], w, cmd, value_start, bool(m[3]), bool(m[2]), verb))
    return out


def _values(f: _File, stop: _Command | None = None) -> dict[str, str]:
    """The simple variables as bash has assigned them when it reaches `stop` (or the end)."""
    env: dict[str, str] = {}
    tainted: set[str] = set()
    text = f.text

    def taint(name: str) -> None:
        tainted.add(name)
        env.pop(name, None)

    for cmd in f.commands:
        if cmd is stop:
            break
        leading, rest = _split_assigns(text, cmd)
        verb = text[rest[0].start : rest[0].end] if rest else ""
        if verb in ("source", ".", "eval") or verb in f.functions:
            env.clear()  # what it assigns is not in this text
            continue
        assigns = leading
        if rest:
            options = any(text[w.start : w.end].startswith("-") for w in rest[1:])
            if verb in ("export", "readonly") and not options:
                assigns = _declared(text, cmd, rest, verb)
            else:  # prefix assignments do not persist; `read NAME`, `unset NAME`, ...
                for a in _declared(text, cmd, rest, verb):
                    taint(a.name)
                for w in rest[1:]:
                    if _NAME_RE.fullmatch(text[w.start : w.end]):
                        taint(text[w.start : w.end])
                continue
        for a in assigns:
            if not cmd.clean:
                taint(a.name)
                continue
            if a.name in tainted:
                continue
            if a.index or a.word.elements is not None:
                env.pop(a.name, None)
                continue
            value = _eval((p for p in a.word.pieces if p.start >= a.value_start), env)
            if a.plus and value is not None:
                old = env.get(a.name)
                value = None if old is None else old + value
            if value is None:
                env.pop(a.name, None)
            else:
                env[a.name] = value
    return env


# --------------------------------------------------------------------------- containers


def _is_space(p: _Piece) -> bool:
    return p.cooked is not None and p.cooked in " \t\n"


class _Container:
    """The list of argv words an edit works on: EXTRA_SCHEDULER_ARGS or AURORA_FLAGS."""

    var: str
    items: list[_Item]

    def __init__(self, f: _File, assign: _Assign) -> None:
        self.f = f
        self.assign = assign
        self.var = assign.name

    def replace(self, item: _Item, a: int, b: int, new: str) -> list[_Edit]:
        """Replace pieces [a, b) of the item by `new` (safe in any quoting), in place."""
        ps = item.pieces
        if a < b:
            return [_Edit(ps[a].start, ps[a].end, new)] + [
                _Edit(p.start, p.end, "") for p in ps[a + 1 : b]
            ]
        pos = ps[a - 1].end if a else item.start
        return [_Edit(pos, pos, new)]

    def remove(self, run: list[int]) -> list[_Edit]:
        raise NotImplementedError

    def add(self, words: list[str]) -> list[_Edit] | str:
        raise NotImplementedError


class _Extra(_Container):
    """EXTRA_SCHEDULER_ARGS: its value is split on whitespace where it is used, after
    bash expanded it at the assignment; every expansion may hold spaces or glob."""

    def __init__(self, f: _File, assign: _Assign) -> None:
        super().__init__(f, assign)
        self.pieces = [self._at_use(p) for p in assign.word.pieces if p.start >= assign.value_start]
        self.items = []
        k = 0
        while k < len(self.pieces):
            if _is_space(self.pieces[k]):
                k += 1
                continue
            first = k
            while k < len(self.pieces) and not _is_space(self.pieces[k]):
                k += 1
            ps = self.pieces[first:k]
            line = bisect.bisect_right(f.starts, ps[0].start)
            self.items.append(_Item(ps, line, ps[0].start, ps[-1].end, first, k))

    @staticmethod
    def _at_use(p: _Piece) -> _Piece:
        if p.cooked is None or (p.cooked in "*?[") or (p.ctx == "u" and p.cooked == "~"):
            return dataclasses.replace(p, cooked=None, split=True)
        return p

    def remove(self, run: list[int]) -> list[_Edit]:
        """Remove the items and the whitespace that separated them from the next (or, at
        the end, the previous) item: as raw text when it stands in one quoting, so a line
        continuation goes with it; else character by character, the quotes kept."""
        i, j, items, text = run[0], run[-1], self.items, self.f.text
        # (piece range, raw range, the whitespace it takes): the gap to the next item, or
        # to the previous one; one on the same line first, so the layout of the lines stays
        cands: list[tuple[int, int, int, int, str]] = []
        if j + 1 < len(items):
            gap = text[items[j].end : items[j + 1].start]
            cands.append(
                (items[i].first, items[j + 1].first, items[i].start, items[j + 1].start, gap)
            )
        if i > 0:
            gap = text[items[i - 1].end : items[i].start]
            cands.append((items[i - 1].stop, items[j].stop, items[i - 1].end, items[j].end, gap))
        if not cands:
            cands.append((items[i].first, items[j].stop, items[i].start, items[j].end, ""))
        cands.sort(key=lambda c: "\n" in c[4])
        for _, _, ra, rb, _ in cands:
            if any(s.inner_start <= ra and rb <= s.inner_end for s in self.assign.word.segments):
                return [_Edit(ra, rb, "")]
        a, b = cands[0][0], cands[0][1]
        return [_Edit(p.start, p.end, "") for p in self.pieces[a:b]]

    def add(self, words: list[str]) -> list[_Edit] | str:
        word, text = self.assign.word, self.f.text
        vstart = self.assign.value_start
        segs = [s for s in word.segments if s.end > vstart]
        new = " ".join(words)
        if not segs:  # EXTRA_SCHEDULER_ARGS=
            return [_Edit(vstart, vstart, f'"{new}"')]
        last = segs[-1]
        if last.ctx == "u":
            value = text[vstart : word.end]
            if len(segs) == 1 and re.fullmatch(r"[A-Za-z0-9_=:/.,@%+-]*", value):
                # quoted around the word, so an edit of the word itself still applies
                return [_Edit(vstart, vstart, '"'), _Edit(word.end, word.end, f' {new}"')]
            return (
                f"line {word.line}: {EXTRA}: the value is not quoted: cannot add {new} "
                "without changing its meaning; edit it by hand"
            )
        sep = "" if not self.pieces or _is_space(self.pieces[-1]) else " "
        return [_Edit(last.inner_end, last.inner_end, sep + new)]


class _Array(_Container):
    """AURORA_FLAGS=( ... ): each element a word of argv (an unquoted expansion in it may
    split or glob into several)."""

    def __init__(self, f: _File, assign: _Assign) -> None:
        super().__init__(f, assign)
        self.elements = assign.word.elements or []
        self.items = [
            _Item([self._element(p) for p in e.pieces], e.line, e.start, e.end)
            for e in self.elements
        ]

    @staticmethod
    def _element(p: _Piece) -> _Piece:
        if p.cooked is None:
            return dataclasses.replace(p, split=p.ctx == "u")
        if p.ctx == "u" and p.cooked in "*?[~":
            return dataclasses.replace(p, cooked=None, split=p.cooked != "~")
        return p

    def remove(self, run: list[int]) -> list[_Edit]:
        text, els = self.f.text, self.elements
        word = self.assign.word
        i, j = run[0], run[-1]
        start, end = els[i].start, els[j].end
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        suffix = text[end:line_end].lstrip(" \t")
        if (
            line_start > word.lparen
            and line_end < word.rparen
            and not text[line_start:start].strip(" \t")
            and (not suffix or suffix.startswith("#"))
        ):
            return [_Edit(line_start, line_end + 1, "")]
        before = text[els[i - 1].end if i else word.lparen + 1 : start]
        after = text[end : els[j + 1].start if j + 1 < len(els) else word.rparen]
        if before and not before.strip(" \t"):
            return [_Edit(start - len(before), end, "")]
        if after and not after.strip(" \t"):
            return [_Edit(start, end + len(after), "")]
        return [_Edit(start, end, "")]

    def add(self, words: list[str]) -> list[_Edit] | str:
        text, word = self.f.text, self.assign.word
        rparen = word.rparen
        line_start = text.rfind("\n", 0, rparen) + 1
        if not self.elements:
            return [_Edit(word.lparen + 1, word.lparen + 1, " ".join(words))]
        if line_start > word.lparen and not text[line_start:rparen].strip(" \t"):
            last = self.elements[-1]
            last_line = text.rfind("\n", 0, last.start) + 1
            indent = re.match(r"[ \t]*", text[last_line:])
            pad = indent.group() if indent and last_line > word.lparen else "  "
            return [_Edit(line_start, line_start, "".join(f"{pad}{w}\n" for w in words))]
        end = self.elements[-1].end
        return [_Edit(end, end, "".join(f" {w}" for w in words))]


# --------------------------------------------------------------------------- flags in items


@dataclass
class _Head:
    prefix: str  # the known characters before the first '=' or unknown
    complete: bool  # no unknown before the '=' (or the end)
    eq: int | None  # index of the '=' piece


def _head(item: _Item) -> _Head:
    prefix = ""
    for k, p in enumerate(item.pieces):
        if p.cooked is None:
            return _Head(prefix, False, None)
        if p.cooked == "=":
            return _Head(prefix, True, k)
        prefix += p.cooked
    return _Head(prefix, True, None)


def _ambiguous(item: _Item) -> bool:
    """Could this word become one of the flags an edit here touches, after expansion?"""
    head = _head(item)
    return not head.complete and any(flag.startswith(head.prefix) for flag in EDITED_FLAGS)


@dataclass
class _Occurrence:
    index: int
    value: int | None  # the item of a `-f v` value
    problem: str = ""


def _occurrences(items: list[_Item], flag: str, var: str, text: str) -> list[_Occurrence]:
    out = []
    for k, item in enumerate(items):
        head = _head(item)
        if not head.complete or head.prefix != flag:
            continue
        occ = _Occurrence(k, None)
        if head.eq is None and k + 1 < len(items):
            nxt = items[k + 1]
            if nxt.pieces and nxt.pieces[0].cooked is None:
                occ.problem = (
                    f"line {nxt.line}: {var}: {_raw(text, item.start, nxt.end)} holds an expansion "
                    f"where the value of {flag} would be: {_REFUSE}"
                )
            elif not nxt.pieces or nxt.pieces[0].cooked != "-":
                occ.value = k + 1
        out.append(occ)
    return out


def _cooked(pieces: list[_Piece]) -> str | None:
    if any(p.cooked is None for p in pieces):
        return None
    return "".join(p.cooked or "" for p in pieces)


def _value_of(items: list[_Item], occ: _Occurrence) -> str | None:
    """The flag's value as the text spells it (None: unknown or absent)."""
    item = items[occ.index]
    head = _head(item)
    if head.eq is not None:
        return _cooked(item.pieces[head.eq + 1 :])
    if occ.value is not None:
        return _cooked(items[occ.value].pieces)
    return None


def _plan(c: _Container, wanted: Mapping[str, str | None]) -> tuple[list[_Edit], list[str]]:
    """The edits that give each wanted flag its value (None: remove it), or the problems."""
    text, items, var = c.f.text, c.items, c.var
    problems = [
        f"line {item.line}: {var}: {_raw(text, item.start, item.end)} could expand to a flag "
        f"this edit changes: {_REFUSE}"
        for item in items
        if _ambiguous(item)
    ]
    problems += _hidden_flags(c)
    edits: list[_Edit] = []
    missing: list[str] = []
    removed: list[int] = []
    for flag, value in wanted.items():
        found = _occurrences(items, flag, var, text)
        problems += [o.problem for o in found if o.problem]
        if any(o.problem for o in found):
            continue
        if value is not None and len(found) > 1:
            lines = ", ".join(dict.fromkeys(str(items[o.index].line) for o in found))
            problems.append(
                f"line {items[found[1].index].line}: {var}: {flag} is given {len(found)} times "
                f"(lines {lines}) and the scheduler refuses a flag given twice: fix the file by hand"
            )
            continue
        if value is not None and not found:
            missing.append(f"{flag}={value}")
            continue
        for occ in found:
            item = items[occ.index]
            head = _head(item)
            touched = (
                item.pieces if value is None or head.eq is None else item.pieces[head.eq + 1 :]
            )
            if occ.value is not None:
                touched = touched + items[occ.value].pieces
            if any(p.cooked is None and p.split for p in touched):
                end = items[occ.value].end if occ.value is not None else item.end
                problems.append(
                    f"line {item.line}: {var}: {_raw(text, item.start, end)} holds an expansion: {_REFUSE}"
                )
            elif value is None:
                removed += [occ.index] + ([occ.value] if occ.value is not None else [])
            elif _value_of(items, occ) == value:
                continue
            elif head.eq is not None:
                edits += c.replace(item, head.eq + 1, len(item.pieces), value)
            elif occ.value is not None:
                nxt = items[occ.value]
                edits += c.replace(nxt, 0, len(nxt.pieces), value)
            else:
                edits += c.replace(item, len(item.pieces), len(item.pieces), f"={value}")
    for run in _runs(sorted(set(removed))):
        edits += c.remove(run)
    if missing:
        added = c.add(missing)
        if isinstance(added, str):
            problems.append(added)
        else:
            edits += added
    return edits, problems


def _hidden_flags(c: _Container) -> list[str]:
    """An expansion bash splits into words, whose text (or known value) names a flag an
    edit here touches: after the edit that flag could be there twice, or still there."""
    text, env = c.f.text, _values(c.f, c.assign.command)
    out = []
    for item in c.items:
        for p in item.pieces:
            if p.cooked is not None or not p.split:
                continue
            spelled = text[p.start : p.end] + (env.get(p.param, "") if p.param else "")
            for flag in EDITED_FLAGS:
                if flag[1:] in spelled:
                    out.append(
                        f"line {item.line}: {c.var}: {_raw(text, item.start, item.end)} holds {flag} "
                        f"inside an expansion, which bash splits into words: {_REFUSE}"
                    )
                    break
    return out


def _bad_substitutions(f: _File, a: _Assign) -> list[str]:
    """`${...}` that bash refuses: the whole assignment fails where bash runs it."""
    words = [a.word, *(a.word.elements or [])]
    return [
        f"line {f.line(p.start)}: {a.name}: {_raw(f.text, p.start, p.end)} is a bad substitution: "
        "bash fails the assignment; fix the file by hand"
        for w in words
        for p in w.pieces
        if p.bad
    ]


def _runs(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for k in indices:
        if runs and runs[-1][-1] == k - 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


def _apply(text: str, edits: list[_Edit]) -> str:
    out, pos = [], 0
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        if e.start < pos:
            raise EnvFileError(f"internal error: overlapping edits at offset {e.start}")
        out += [text[pos : e.start], e.new]
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


# --------------------------------------------------------------------------- the edits


def _need(f: _File) -> Flavour:
    if f.flavour is None:
        raise EnvFileError(
            f"neither an {FLAGS}=( ... ) array nor {MASTER} or {EXTRA} is assigned: "
            "not an Aurora scheduler environment file"
        )
    return f.flavour


def _append_lines(f: _File, lines: list[str]) -> tuple[list[_Edit], list[str]]:
    text = f.text
    if text.endswith("\\") or f.open_heredoc or not f.closed:
        return [], [
            f"line {text.count(chr(10)) + 1}: the file does not end cleanly (a backslash, an open here-document or compound): cannot add {', '.join(lines)}; edit it by hand"
        ]
    if not text or text.endswith("\n"):
        return [_Edit(len(text), len(text), "".join(f"{line}\n" for line in lines))], []
    return [_Edit(len(text), len(text), "".join(f"\n{line}" for line in lines))], []


def _master_edit(f: _File, a: _Assign) -> list[_Edit]:
    word, vstart = a.word, a.value_start
    if word.elements is not None:
        raise EnvFileError(f"line {word.line}: {MASTER} is an array: {_REFUSE}")
    value = [p for p in word.pieces if p.start >= vstart]
    if _cooked(value) == BOGUS_MASTER:
        return []
    segs = [s for s in word.segments if s.end > vstart]
    style = segs[0].ctx if len(segs) == 1 else "d"
    quote = {"s": "'", "u": ""}.get(style, '"')
    return [_Edit(vstart, word.end, f"{quote}{BOGUS_MASTER}{quote}")]


def _edit(text: str, wanted: Mapping[str, str | None], master: bool) -> tuple[str, list[str]]:
    """The edited text and the problems (the text unchanged when there are any).

    `master`: also point Debian's MESOS_MASTER at BOGUS_MASTER (RPM: name
    -mesos_master_address in `wanted`)."""
    f = _analyse(text)
    edits, problems = _edit_rpm(f, wanted) if _need(f) == "rpm" else _edit_debian(f, wanted, master)
    return (text if problems else _apply(text, edits)), list(dict.fromkeys(problems))


def _edit_rpm(f: _File, wanted: Mapping[str, str | None]) -> tuple[list[_Edit], list[str]]:
    problems = list(f.problems[FLAGS])
    a = f.clean_assign(FLAGS)
    if a is None:
        return [], problems
    problems += _bad_substitutions(f, a)
    if a.word.elements is None:
        problems.append(f"line {a.word.line}: {FLAGS} is not an array: {_REFUSE}")
    if problems:
        return [], problems
    return _plan(_Array(f, a), wanted)


def _edit_debian(
    f: _File, wanted: Mapping[str, str | None], master: bool
) -> tuple[list[_Edit], list[str]]:
    text = f.text
    edits: list[_Edit] = []
    problems: list[str] = []
    new_lines: list[str] = []
    if master:
        problems += f.problems[MASTER]
        a = f.clean_assign(MASTER)
        if a is None and not f.problems[MASTER]:
            new_lines.append(f'{MASTER}="{BOGUS_MASTER}"')
        elif a is not None:
            problems += _bad_substitutions(f, a)
            try:
                edits += _master_edit(f, a)
            except EnvFileError as exc:
                problems.append(str(exc))
    problems += f.problems[EXTRA] + f.problems["IFS"]
    a = f.clean_assign(EXTRA)
    if a is None and not f.problems[EXTRA]:
        words = [f"{k}={v}" for k, v in wanted.items() if v is not None]
        if words:
            new_lines.append(f'{EXTRA}="{" ".join(words)}"')
    elif a is not None and a.word.elements is not None:
        problems.append(f"line {a.word.line}: {EXTRA} is an array: {_REFUSE}")
    elif a is not None:
        problems += _bad_substitutions(f, a)
        extra = _Extra(f, a)
        for occ in _occurrences(extra.items, MASTER_FLAG, EXTRA, text) if master else []:
            item = extra.items[occ.index]
            problems.append(
                f"line {item.line}: {EXTRA}: {_raw(text, item.start, item.end)} repeats {MASTER_FLAG}, "
                f"which the startup script passes from {MASTER}: fix the file by hand"
            )
        e, p = _plan(extra, wanted)
        edits, problems = edits + e, problems + p
    if new_lines:
        e, p = _append_lines(f, new_lines)
        edits, problems = edits + e, problems + p
    return edits, problems


def _checked(result: tuple[str, list[str]]) -> str:
    text, problems = result
    if problems:
        raise EnvFileError("; ".join(problems))
    return text


def _disable_wanted(flav: Flavour) -> dict[str, str | None]:
    if flav == "rpm":
        return dict(DISABLED_ARGV)
    return dict(DISABLE_FLAGS)


# --------------------------------------------------------------------------- public API


def flavour(text: str) -> Flavour:
    """ "rpm" when an AURORA_FLAGS=( ... ) array is assigned, "debian" when MESOS_MASTER or
    EXTRA_SCHEDULER_ARGS is; EnvFileError otherwise (or when the file cannot be read)."""
    return _need(_analyse(text))


def parse(text: str) -> dict[str, str]:
    """The simple variables as bash assigns them when it sources the file.

    `$VAR`/`${VAR}` are expanded from earlier assignments. A variable whose value is not
    in the text is left out: one holding `$(...)`, backticks, `$((...))`, `${VAR:-...}`,
    a variable the file does not assign (bash sets some itself, e.g. HOSTNAME), an array,
    one assigned inside `if`/a function/a pipeline, or assigned before a `source`/`.`/`eval`
    (which may change anything). EnvFileError when the file cannot be read as bash.
    """
    return _values(_analyse(text))


def settings(text: str) -> dict[str, str]:
    """{"log_dir", "backup_dir", "quorum"} where the file says them, for either flavour.

    Debian: LOGDB_FILE_PATH, BACKUP_DIR, QUORUM_SIZE; RPM: the -native_log_file_path,
    -backup_dir and -native_log_quorum_size elements of AURORA_FLAGS (`-f=v` or `-f v`).
    """
    f = _analyse(text)
    if _need(f) == "debian":
        values = _values(f)
        return {key: values[var] for key, (var, _) in SETTINGS.items() if var in values}
    a = f.clean_assign(FLAGS)
    if a is None or a.word.elements is None:
        return {}
    env = _values(f, a.command)
    items = _Array(f, a).items
    raw_items = [_Item(list(e.pieces), e.line, e.start, e.end) for e in a.word.elements]
    out = {}
    for key, (_, flag) in SETTINGS.items():
        found = _occurrences(items, flag, FLAGS, text)
        if len(found) != 1 or found[0].problem:
            continue
        item = raw_items[found[0].index]
        head = _head(items[found[0].index])
        if head.eq is not None:
            value = _eval(item.pieces[head.eq + 1 :], env, array=True)
        elif found[0].value is not None:
            value = _eval(raw_items[found[0].value].pieces, env, array=True)
        else:
            value = None
        if value is not None:
            out[key] = value
    return out


def disable(text: str) -> str:
    """prep.disable: the scheduler cannot register or reconcile (docs/aurora-notes.md §F1).

    Debian: MESOS_MASTER's value becomes BOGUS_MASTER (its quote style kept), and each
    DISABLE_FLAGS flag in EXTRA_SCHEDULER_ARGS gets its value where it stands, or is added
    once at its end (inside its quotes); missing assignments are added as lines at the
    end. RPM: the same three flags in AURORA_FLAGS, replaced or added as elements.
    EnvFileError (one line each problem, naming the line) where the meaning cannot be kept.
    Idempotent: disable(disable(t)) == disable(t).
    """
    f = _analyse(text)
    return _checked(_edit(text, _disable_wanted(_need(f)), master=True))


def drop_auth(text: str) -> str:
    """prep.auth: remove -http_authentication_mechanism (`-f=v` or `-f v`), with the
    whitespace that separated it, from EXTRA_SCHEDULER_ARGS / AURORA_FLAGS."""
    return _checked(_edit(text, NO_AUTH_ARGV, master=False))


def _container(f: _File) -> _Container | None:
    if f.flavour == "rpm":
        a = f.clean_assign(FLAGS)
        return _Array(f, a) if a is not None and a.word.elements is not None else None
    a = f.clean_assign(EXTRA)
    return _Extra(f, a) if a is not None and a.word.elements is None else None


def has_auth_flag(text: str) -> bool:
    """Whether the file spells -http_authentication_mechanism among the scheduler's flags,
    in any assignment of EXTRA_SCHEDULER_ARGS / AURORA_FLAGS (also one drop_auth refuses)."""
    f = _analyse(text)
    if f.flavour is None:
        return False
    var = FLAGS if f.flavour == "rpm" else EXTRA
    for a in f.assigns:
        if a.name != var or (a.word.elements is None) != (var == EXTRA):
            continue
        c: _Container = _Array(f, a) if var == FLAGS else _Extra(f, a)
        if _occurrences(c.items, AUTH_FLAG, var, text):
            return True
    return False


def check_disabled(text: str) -> list[str]:
    """A static check of a disabled file: what is wrong; empty when the bogus master and the
    two delays are there, each once, with nothing that could expand to another of them."""
    try:
        f = _analyse(text)
        flav = _need(f)
    except EnvFileError as exc:
        return [str(exc)]
    problems: list[str] = []
    wanted = _disable_wanted(flav)
    if flav == "debian":
        problems += f.problems[MASTER] + f.problems[EXTRA] + f.problems["IFS"]
        master = _values(f).get(MASTER) if f.clean_assign(MASTER) else None
        if master != BOGUS_MASTER:
            problems.append(f"{MASTER} is {master!r}, not {BOGUS_MASTER!r}")
        wanted[MASTER_FLAG] = None
    else:
        problems += f.problems[FLAGS]
    c = _container(f)
    var = EXTRA if flav == "debian" else FLAGS
    items = c.items if c is not None else []
    problems += [
        f"line {i.line}: {var}: {_raw(text, i.start, i.end)} could expand to one of the flags"
        for i in items
        if _ambiguous(i)
    ]
    for flag, value in wanted.items():
        found = _occurrences(items, flag, var, text)
        values = [_value_of(items, o) for o in found]
        if value is None and found:
            problems.append(f"{flag} is in {var}, which the startup script already passes")
        elif value is not None and values != [value]:
            problems.append(f"{flag} is {values!r} in {var}, want [{value!r}] once")
    return list(dict.fromkeys(problems))


def check_editable(text: str) -> list[str]:
    """Everything that would make disable() or drop_auth() refuse, one line each; empty when
    both can edit the file. For preflight: computed in memory before anything changes."""
    try:
        f = _analyse(text)
        flav = _need(f)
    except EnvFileError as exc:
        return [str(exc)]
    problems = _edit(text, _disable_wanted(flav), master=True)[1]
    problems += _edit(text, NO_AUTH_ARGV, master=False)[1]
    return list(dict.fromkeys(problems))


# --------------------------------------------------------------------------- argv on the host


def argv_script(flavour: Flavour) -> str:
    """A bash program, run as `bash -c PROGRAM _ FILE`, that prints the scheduler's argv.

    It sources FILE (which may be /dev/stdin) in a clean environment (only PATH kept, cwd
    `/` as under systemd, no rc files), the way the packaged startup script does, with the
    file's own output sent to stderr; then prints the word count and each word of argv as
    NUL-terminated records: Debian, the fixed flags from the variables followed by
    `$EXTRA_SCHEDULER_ARGS` unquoted (specs/debian/aurora-scheduler.startup.sh); RPM,
    `"${AURORA_FLAGS[@]}"` (specs/rpm/aurora-scheduler.startup.sh). Exits non-zero without
    printing when FILE cannot be read.
    """
    if flavour == "debian":
        fixed = " ".join(f'{flag}="${var}"' for flag, var in DEBIAN_FIXED_FLAGS)
        argv = f"({fixed} ${EXTRA})"
    else:
        argv = f'("${{{FLAGS}[@]}}")'
    inner = (
        "builtin cd / || exit 3\n"
        "__aurora_envfile=$1; shift\n"
        'builtin source "$__aurora_envfile" >&2\n'
        f"__aurora_argv={argv}\n"
        'builtin printf "%s\\0" "${#__aurora_argv[@]}" "${__aurora_argv[@]}"\n'
    )
    return (
        "f=$1; case $f in /*) ;; *) f=$PWD/$f ;; esac\n"
        '[ -r "$f" ] || { echo "cannot read $f" >&2; exit 2; }\n'
        f'exec env -i PATH="$PATH" "$BASH" --noprofile --norc -c {shlex.quote(inner)} aurora-scheduler-startup "$f"\n'
    )


def parse_argv(stdout: bytes) -> list[str]:
    """The argv that argv_script printed; EnvFileError when the output is not complete."""
    records = stdout.split(b"\0")
    if len(records) < 2 or records[-1] != b"" or not records[0].isdigit():
        raise EnvFileError("the argv script printed no complete argv (the file exited or failed?)")
    words = [r.decode("utf-8", "surrogateescape") for r in records[1:-1]]
    if int(records[0]) != len(words):
        raise EnvFileError(
            f"the argv script printed {len(words)} words, announced {int(records[0])}"
        )
    return words


def _argv_occurrences(argv: list[str], flag: str) -> list[tuple[int, int, str | None]]:
    """(first, stop, value) of each `-f=v`, `-f v` or bare `-f` in argv."""
    out: list[tuple[int, int, str | None]] = []
    k = 0
    while k < len(argv):
        word = argv[k]
        if word.startswith(flag + "="):
            out.append((k, k + 1, word[len(flag) + 1 :]))
        elif word == flag:
            if k + 1 < len(argv) and not argv[k + 1].startswith("-"):
                out.append((k, k + 2, argv[k + 1]))
                k += 1
            else:
                out.append((k, k + 1, None))
        k += 1
    return out


def _without(argv: list[str], flags: Iterable[str]) -> list[str]:
    drop: set[int] = set()
    for flag in flags:
        for first, stop, _ in _argv_occurrences(argv, flag):
            drop.update(range(first, stop))
    return [w for k, w in enumerate(argv) if k not in drop]


def argv_changes(
    before: list[str], after: list[str], wanted: Mapping[str, str | None]
) -> list[str]:
    """What is wrong with `after`: it must equal `before` except that each wanted flag is
    there exactly once with its value (None: absent), in `-f=v` or `-f v` form."""
    problems = []
    for flag, value in wanted.items():
        found = [v for _, _, v in _argv_occurrences(after, flag)]
        if value is None and found:
            problems.append(f"{flag} is still given ({found!r})")
        elif value is not None and found != [value]:
            problems.append(f"{flag} is {found!r}, want [{value!r}] once")
    rest_before, rest_after = _without(before, wanted), _without(after, wanted)
    matcher = difflib.SequenceMatcher(a=rest_before, b=rest_after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        old, new = rest_before[i1:i2], rest_after[j1:j2]
        if tag == "replace":
            problems.append(f"{' '.join(map(repr, old))} became {' '.join(map(repr, new))}")
        elif tag == "delete":
            problems.append(f"{' '.join(map(repr, old))} disappeared")
        elif tag == "insert":
            problems.append(f"{' '.join(map(repr, new))} appeared")
    return problems
