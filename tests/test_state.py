"""The transitions table (runbook.state): every allowed move, and refused ones, named."""

from __future__ import annotations

import pytest

from runbook.state import (
    RESTORE_TRANSITIONS,
    STEP_TRANSITIONS,
    RestoreStatus,
    StepStatus,
    TransitionRefused,
    restore_moves,
    restore_transition,
    step_moves,
    step_transition,
)

STEP_MOVES = [(old, new) for old, news in STEP_TRANSITIONS.items() for new in sorted(news)]
RESTORE_MOVES = [(old, new) for old, news in RESTORE_TRANSITIONS.items() for new in sorted(news)]
S, R = StepStatus, RestoreStatus


def test_every_status_has_a_row() -> None:
    assert set(STEP_TRANSITIONS) == set(StepStatus)
    assert set(RESTORE_TRANSITIONS) == set(RestoreStatus)


@pytest.mark.parametrize(("old", "new"), STEP_MOVES)
def test_an_allowed_step_move(old: StepStatus, new: StepStatus) -> None:
    assert step_transition(old, new) is new
    assert step_transition(old.value, new.value) is new  # as stored: plain strings


@pytest.mark.parametrize(("old", "new"), RESTORE_MOVES)
def test_an_allowed_restore_move(old: RestoreStatus, new: RestoreStatus) -> None:
    assert restore_transition(old, new) is new
    assert restore_transition(old.value, new.value) is new


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.SUCCEEDED),  # nothing succeeds without running
        (S.PENDING, S.FAILED),
        (S.PENDING, S.INTERRUPTED),
        (S.AWAITING, S.SUCCEEDED),  # an approval runs the step first
        (S.AWAITING, S.INTERRUPTED),
        (S.SUCCEEDED, S.RUNNING),  # nothing runs twice without going back first
        (S.SUCCEEDED, S.FAILED),
        (S.SKIPPED, S.RUNNING),
        (S.FAILED, S.SUCCEEDED),  # only a retry, or a Mark done of an interrupted step
        (S.INTERRUPTED, S.FAILED),
        (S.INTERRUPTED, S.PENDING),
        (S.RUNNING, S.PENDING),
        (S.RUNNING, S.SKIPPED),
        (S.NOT_NEEDED, S.PENDING),  # shown only, never stored
    ],
)
def test_a_refused_step_move_names_both_statuses(old: StepStatus, new: StepStatus) -> None:
    with pytest.raises(TransitionRefused, match=f"a step cannot go from {old} to {new}$"):
        step_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (R.RUNNING, R.REVERTED),  # an abort comes first
        (R.RUNNING, R.PUTTING_BACK),
        (R.SUCCEEDED, R.RUNNING),
        (R.SUCCEEDED, R.ABORTED),
        (R.FAILED, R.RUNNING),
        (R.REVERTED, R.ABORTED),
        (R.PUTTING_BACK, R.RUNNING),
        (R.ABORTED, R.RUNNING),
    ],
)
def test_a_refused_restore_move(old: RestoreStatus, new: RestoreStatus) -> None:
    with pytest.raises(TransitionRefused, match=f"a restore cannot go from {old} to {new}$"):
        restore_transition(old, new)


def test_a_status_that_does_not_exist_is_named() -> None:
    with pytest.raises(TransitionRefused, match="step status: 'done' is not a StepStatus"):
        step_transition("done", "pending")
    with pytest.raises(TransitionRefused, match="restore status: 'over' is not a RestoreStatus"):
        restore_transition("running", "over")


def test_moves_check_each_old_status_for_the_store() -> None:
    assert step_moves(["awaiting", "failed"], S.SKIPPED) == (S.AWAITING, S.FAILED)
    # None: the status stays, which each old one must allow (a host's result while running)
    assert step_moves(["running"], None) == (S.RUNNING,)
    with pytest.raises(TransitionRefused, match="from succeeded to succeeded"):
        step_moves(["running", "succeeded"], None)
    with pytest.raises(TransitionRefused, match="from pending to succeeded"):
        step_moves(["interrupted", "pending"], S.SUCCEEDED)
    assert restore_moves(["running"], R.ABORTED) == (R.RUNNING,)
    with pytest.raises(TransitionRefused, match="from reverted to aborted"):
        restore_moves(["aborted", "reverted"], R.ABORTED)


def test_statuses_are_their_stored_strings() -> None:
    assert [s.value for s in StepStatus] == [
        "pending",
        "awaiting",
        "running",
        "succeeded",
        "failed",
        "skipped",
        "interrupted",
        "not needed",
    ]
    assert StepStatus.RUNNING == "running" and f"{RestoreStatus.PUTTING_BACK}" == "putting_back"
