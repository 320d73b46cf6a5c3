"""Degenerate and refusing answers are recognised in the models' own answers, whatever the text."""

from __future__ import annotations

from hypothesis import given, strategies as st

from alignloop.evaluation.answers import CUT_OFF, EMPTY, REPEATING, degenerate_kind, is_refusal


def test_empty_repeating_and_cut_off_answers_are_told_apart_from_ordinary_ones():
    assert degenerate_kind("", stopped=True) == EMPTY
    assert degenerate_kind(" \n\t ", stopped=False) == EMPTY
    assert degenerate_kind("the cat sat " * 6, stopped=True) == REPEATING
    assert degenerate_kind("!" * 40, stopped=True) == REPEATING
    assert degenerate_kind("Paris is the capital of France.", stopped=True) is None
    assert degenerate_kind("Paris is the capital of France, and it", stopped=False) == CUT_OFF
    # A long ordinary answer with a few repeated words is not repeating itself.
    text = "To reset a password open settings, choose account, then security, and follow the link we send you."
    assert degenerate_kind(text, stopped=True) is None


def test_refusals_are_recognised_and_answers_are_not():
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("As an AI language model I cannot browse.")
    assert not is_refusal("Sure: 2 + 2 = 4.")
    assert not is_refusal("I can help: open the settings page.")


@given(st.text(max_size=300), st.booleans())
def test_any_text_gets_one_known_kind_and_blank_text_is_always_empty(text, stopped):
    kind = degenerate_kind(text, stopped)
    assert kind in (None, EMPTY, REPEATING, CUT_OFF)
    if not text.strip():
        assert kind == EMPTY
    elif kind is None:
        assert stopped  # an ordinary answer the model did not end itself is cut off
    assert isinstance(is_refusal(text), bool)
