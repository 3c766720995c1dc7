"""`procedure = "auto"` chooses by the Aurora version; a configured procedure is taken as
it is; disagreement or no version at all is refused with one line."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from runbook.choice import CannotChoose, choose, chooser, procedure_for, versions_on_vars
from runbook.clusters import ClusterFileError, parse_clusters
from runbook.engine import Refused

A, B, C = "a.example", "b.example", "c.example"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.13.0", "online"),
        ("0.17.0", "online"),
        ("0.19.1", "online"),
        ("0.20.0", "online"),
        ("0.20.1-SNAPSHOT", "online"),
        ("0.21.0", "offline"),
        ("0.22.0", "offline"),
        ("0.27.0", "offline"),
        ("1.0.0", "offline"),
    ],
)
def test_auto_by_version(version: str, expected: str) -> None:
    name, got, why = choose("auto", {A: version, B: version})
    assert (name, got) == (expected, version)
    assert version in why and "build.version on /vars" in why


@pytest.mark.parametrize("version", ["0.12.0", "0.6.0", "banana", ""])
def test_versions_with_no_procedure(version: str) -> None:
    with pytest.raises(CannotChoose):
        procedure_for(version)


# (configured, /vars, aurora_version in the cluster file, backup's version) → expected
# (name, version), or the words the refusal must hold.
TABLE = [
    ("auto", {A: "0.22.0", B: "0.22.0", C: "0.22.0"}, None, None, ("offline", "0.22.0")),
    ("auto", {A: "0.17.0"}, None, None, ("online", "0.17.0")),
    # A host that is down (left out) does not disagree.
    ("auto", {B: "0.21.0"}, None, "0.17.0", ("offline", "0.21.0")),
    # Nobody answers: the cluster file's version, then the backup's.
    ("auto", {}, "0.20.0", None, ("online", "0.20.0")),
    ("auto", {}, None, "0.22.0", ("offline", "0.22.0")),
    ("auto", {}, "0.22.0", "0.19.0", ("offline", "0.22.0")),
    # A configured procedure wins, with whatever version is known.
    ("online", {A: "0.22.0"}, None, None, ("online", "0.22.0")),
    ("offline", {}, None, None, ("offline", None)),
    ("offline", {A: "0.20.0"}, None, None, ("offline", "0.20.0")),
    # Refusals.
    ("auto", {A: "0.21.0", B: "0.22.0"}, None, None, "report different versions"),
    ("auto", {A: "0.20.0", B: "0.22.0"}, None, None, "a.example 0.20.0, b.example 0.22.0"),
    ("auto", {A: "0.22.0"}, "0.20.0", None, "aurora_version is 0.20.0"),
    # Nothing known at all: the procedure every release supports, saying why.
    ("auto", {}, None, None, ("online", None)),
    ("offline", {A: "0.17.0"}, None, None, "needs recovery-tool"),
    ("offline", {A: "0.17.0", B: "0.22.0"}, None, None, "report different versions"),
]


@pytest.mark.parametrize(("configured", "on_vars", "file_version", "backup", "expected"), TABLE)
def test_choice_table(
    configured: str,
    on_vars: dict[str, str],
    file_version: str | None,
    backup: str | None,
    expected: tuple[str, str | None] | str,
) -> None:
    if isinstance(expected, str):
        with pytest.raises(CannotChoose) as err:
            choose(configured, on_vars, file_version, backup)
        assert expected in str(err.value)
        assert "\n" not in str(err.value)
        return
    name, version, why = choose(configured, on_vars, file_version, backup)
    assert (name, version) == expected
    assert why and "\n" not in why


def test_versions_on_vars_leaves_out_silent_hosts() -> None:
    answers = {
        A: {"build.version": "0.22.0", "scheduler_lifecycle_ACTIVE": "1"},
        B: "no answer within 3s",
        C: {"scheduler_lifecycle_STORAGE_PREPARED": "1"},  # a build without .auroraversion
    }
    assert versions_on_vars(answers) == {A: "0.22.0"}


BASE = {"aurora_name": "west", "schedulers": [{"host": "s1.example"}]}


def test_procedure_field_defaults_to_auto() -> None:
    cluster = parse_clusters({"clusters": {"west": dict(BASE)}}, "c.toml")["west"]
    assert cluster.procedure == "auto"
    assert cluster.recovery_tool is None


@pytest.mark.parametrize("name", ["online", "offline", "auto"])
def test_procedure_field_accepts(name: str) -> None:
    cluster = parse_clusters({"clusters": {"west": {**BASE, "procedure": name}}}, "c.toml")
    assert cluster["west"].procedure == name


@pytest.mark.parametrize("bad", ["Offline", "recovery-tool", "", 1, True])
def test_procedure_field_refuses(bad: object) -> None:
    with pytest.raises(ClusterFileError) as err:
        parse_clusters({"clusters": {"west": {**BASE, "procedure": bad}}}, "c.toml")
    text = str(err.value)
    assert text.startswith("c.toml: cluster 'west': procedure: ")
    assert "\n" not in text


def test_recovery_tool_path_is_validated() -> None:
    ok = parse_clusters(
        {"clusters": {"west": {**BASE, "recovery_tool": "/opt/aurora/bin/recovery-tool"}}}, "c"
    )
    assert ok["west"].recovery_tool == "/opt/aurora/bin/recovery-tool"
    with pytest.raises(ClusterFileError) as err:
        parse_clusters({"clusters": {"west": {**BASE, "recovery_tool": "recovery-tool; rm"}}}, "c")
    assert "recovery_tool: an absolute path" in str(err.value)


class FixedVars:
    """A /vars port that answers what it was given (the choice reads nothing else)."""

    def __init__(self, answers: dict[str, dict[str, str] | str]) -> None:
        self.answers = answers
        self.closed = False

    async def vars(
        self, endpoints: Mapping[str, tuple[str, int]], timeout: float
    ) -> dict[str, dict[str, str] | str]:
        return {h: self.answers.get(h, "no answer within 3s") for h in endpoints}

    async def close(self) -> None:
        self.closed = True


THREE = {"aurora_name": "west", "schedulers": [{"host": h} for h in (A, B, C)]}


async def test_the_engine_chooser_reads_vars_and_refuses_in_one_line() -> None:
    cluster = parse_clusters({"clusters": {"west": THREE}}, "c.toml")["west"]
    probe = FixedVars({A: {"build.version": "0.22.0"}, B: {"build.version": "0.22.0"}})
    name, why, version = await chooser(lambda: probe)(cluster)
    assert (name, version) == ("offline", "0.22.0") and "a.example 0.22.0" in why
    assert probe.closed
    split = FixedVars({A: {"build.version": "0.20.0"}, C: {"build.version": "0.22.0"}})
    with pytest.raises(Refused) as err:
        await chooser(lambda: split)(cluster)
    assert str(err.value).startswith("west: the schedulers report different versions")
    assert "\n" not in str(err.value) and split.closed


def test_rehydrate_names_one_of_the_schedulers() -> None:
    ok = parse_clusters({"clusters": {"west": {**BASE, "rehydrate": "s1.example"}}}, "c.toml")
    assert ok["west"].rehydrate == "s1.example"
    with pytest.raises(ClusterFileError) as err:
        parse_clusters({"clusters": {"west": {**BASE, "rehydrate": "s9.example"}}}, "c.toml")
    text = str(err.value)
    assert "rehydrate: 's9.example' is not one of the schedulers" in text
    assert "\n" not in text
