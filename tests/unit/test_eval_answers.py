"""Degenerate and refusing answers are recognised in the models' own answers, whatever the text."""

from __future__ import annotations

from hypothesis import given, strategies as st

from alignloop.evaluation.answers import CUT_OFF, EMPTY, REPEATING, answer_token_limit, degenerate_kind, is_refusal
from alignloop.models import load_tokenizer


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


def _tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_the_answer_limit_covers_nearly_every_preferred_answer_not_the_longest_few(tiny_dir):
    """Answers may run as long as 95 % of the held-out preferred answers (plus the end token), rounded up to 16:
    a limit fixed below the answers' usual length calls most of them cut off, one set by the longest lets a
    looping model run for minutes. Lengths are counted with the tokenizer, as generation counts them."""
    tokenizer = load_tokenizer(tiny_dir)
    words = "the answer is in the settings page and then the account tab "
    answers = [" ".join(words.split()[: 1 + i % 12] * (1 + i % 4)) for i in range(95)] + ["x " * 3000] * 5
    lengths = sorted(_tokens(tokenizer, a) for a in answers)
    at = lengths[94] + 1                                    # nearest rank: the 95th of 100, then the end token
    assert lengths[94] < 200 < lengths[95]                  # the five longest lie far beyond the rest
    expected = min(256, max(32, -(-at // 16) * 16))
    assert 32 < expected < 256                              # decided by the data, not by a bound
    assert answer_token_limit(tokenizer, answers) == expected
    # Longer preferred answers, a longer limit (a fixed limit fails here).
    assert answer_token_limit(tokenizer, [f"{a} {a}" for a in answers[:95]] + answers[95:]) > expected
    # The bounds: short answers still get 32 tokens, answers that are all long get 256, none gets 32.
    assert answer_token_limit(tokenizer, ["Yes."] * 20) == 32
    assert answer_token_limit(tokenizer, ["x " * 3000] * 20) == 256
    assert answer_token_limit(tokenizer, []) == 32
