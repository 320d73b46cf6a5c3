"""The promotion gate: may a challenger become champion? A pure function of what its evaluation
measured, the `promotion` settings and the champion it would replace; every check says why, one line
each, so the verdict reads the same in the CLI, in the version's tags and on the review page.

Every check that compares a measured quantity decides by its 95% interval, never by the point
estimate: a gain or a win rate counts when the interval's lower bound lies above the bound, a guard
holds when the upper bound lies below the limit. A quantity measured on fewer than
`promotion.min_prompts` prompts, or without an interval, is unmeasured.

Verdicts: "pass" (every configured check cleared), "fail" (a check measured and missed), and
"unmeasured" (a configured check has no trustworthy number, or the challenger was not compared with
the current champion on its own evaluation set). Only "pass" lets a version be promoted without --force.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alignloop.config import PromotionSettings, gate_settings_hash

PASS, FAIL, UNMEASURED = "pass", "fail", "unmeasured"


@dataclass(frozen=True)
class Check:
    """One rule's outcome: passed True/False, or None when it could not be measured."""

    name: str
    passed: bool | None
    line: str
    counted: bool = True      # False: reported for the record, left out of the verdict

    @property
    def mark(self) -> str:
        return "skip" if not self.counted else {True: PASS, False: FAIL, None: UNMEASURED}[self.passed]


@dataclass(frozen=True)
class Champion:
    """The version a challenger would replace, as far as the gate needs to know it."""

    version: int


@dataclass(frozen=True)
class GateInput:
    """What the gate reads about one challenger."""

    metrics: Mapping[str, float]
    eval_set_hash: str | None
    evaluated_against: int | None = None      # champion version its evaluation compared with, if any
    champion_set_hash: str | None = None      # the set that champion was scored on in that evaluation
    judge_usable: bool | None = None          # None: no judge ran
    judge_accuracy: float | None = None
    champion: Champion | None = None          # the current champion (None: there is none)
    recorded_settings: Mapping[str, Any] | None = None  # at promotion: the settings it was registered under
    at_promotion: bool = False


@dataclass(frozen=True)
class Verdict:
    verdict: str
    checks: tuple[Check, ...] = field(default_factory=tuple)
    settings: Mapping[str, Any] = field(default_factory=dict)  # the promotion settings that decided it

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def lines(self) -> list[str]:
        return [f"{c.mark}: {c.line}" for c in self.checks]

    @property
    def settings_hash(self) -> str:
        return gate_settings_hash(dict(self.settings))

    def to_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict, "reasons": self.lines, "settings_hash": self.settings_hash,
                "settings": dict(self.settings)}


def decide(gate_input: GateInput, settings: PromotionSettings) -> Verdict:
    """Run every configured check; the verdict is fail if any failed, else unmeasured if any had no
    number, else pass."""
    gi, m = gate_input, gate_input.metrics
    checks = [_compared_with_champion(gi), *_gain(gi, settings)]
    n_generated = m.get("eval_generation_prompts")
    if settings.max_kl_reference is not None:
        checks.append(_upper_below("KL from the reference (nats per answer)", m, "eval_kl_reference",
                                   settings.max_kl_reference, "promotion.max_kl_reference", "{:.3f}",
                                   m.get("eval_kl_prompts"), settings.min_prompts))
    if settings.max_ppl_rise is not None:
        checks.append(_upper_below("perplexity rise on the capability text", m, "eval_ppl_rise",
                                   settings.max_ppl_rise, "promotion.max_ppl_rise", "{:+.1%}"))
    if settings.max_length_drift is not None:
        checks.append(_length_drift(m, settings.max_length_drift, n_generated, settings.min_prompts))
    if settings.max_degenerate_rise is not None:
        checks.append(_upper_below("degenerate answers, candidate − reference share", m, "eval_degenerate_rate_delta",
                                   settings.max_degenerate_rise, "promotion.max_degenerate_rise", "{:+.1%}",
                                   n_generated, settings.min_prompts))
    if settings.min_judge_win_rate is not None:
        checks.append(_judge(gi, settings))
    if not any(c.counted and c.name in (GAIN, JUDGED) for c in checks):
        checks.append(Check("a comparison", None, "no counted check compares the candidate with the champion (or "
                            "reference): set promotion.min_gain_ci_low, or min_judge_win_rate with a usable judge"))
    if gi.at_promotion:
        checks.append(_not_looser(gi.recorded_settings, settings))
    outcomes = [c.passed for c in checks if c.counted]
    verdict = FAIL if False in outcomes else UNMEASURED if None in outcomes else PASS
    return Verdict(verdict, tuple(checks), settings.gate_values())


GAIN, JUDGED = "preference accuracy gain", "judged win rate"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _too_few(name: str, n: float | None, min_prompts: int) -> Check | None:
    """Unmeasured when the quantity rests on fewer than min_prompts prompts (or the count is unknown)."""
    if not _finite(n):
        return Check(name, None, f"{name}: the number of prompts it was measured on is not recorded; evaluate "
                     "again (alignloop run --force)")
    if n < min_prompts:
        return Check(name, None, f"{name}: measured on {n:.0f} prompts, fewer than promotion.min_prompts "
                     f"({min_prompts}); too little evidence to decide: collect more feedback or hold out more "
                     "prompts (evaluation.holdout_fraction, evaluation.generation_prompts)")
    return None


def _compared_with_champion(gi: GateInput) -> Check:
    """The champion must have been scored in the challenger's own evaluation, on the challenger's set."""
    name = "compared with the current champion on one set"
    if gi.eval_set_hash is None:
        return Check(name, None, "the challenger has no eval-set hash: evaluate it (alignloop evaluate)")
    if gi.champion is None:
        return Check(name, True, f"no champion yet; evaluated on set {gi.eval_set_hash}")
    version = gi.champion.version
    if gi.evaluated_against != version:
        against = "no champion" if gi.evaluated_against is None else f"version {gi.evaluated_against}"
        return Check(name, None, f"evaluated against {against}, not the current champion (version {version}); "
                     "evaluate again (alignloop run --force)")
    if gi.champion_set_hash and gi.champion_set_hash != gi.eval_set_hash:
        return Check(name, None, f"the challenger was scored on set {gi.eval_set_hash}, the champion (version "
                     f"{version}) on set {gi.champion_set_hash}: their numbers do not compare; evaluate again "
                     "(alignloop run --force)")
    return Check(name, True, f"the champion (version {version}) scored in the same run on the challenger's set "
                 f"{gi.eval_set_hash}")


def _interval_text(m: Mapping[str, float], key: str, fmt: str) -> str:
    value, low, high = m.get(key), m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    shown = f"{fmt.format(value)} " if _finite(value) else ""
    return f"{shown}95% CI [{fmt.format(low)}, {fmt.format(high)}]"


def _gain(gi: GateInput, settings: PromotionSettings) -> list[Check]:
    """The preference-accuracy gain's interval: against the champion when there is one."""
    if settings.min_gain_ci_low is None:
        return []
    m, bound = gi.metrics, settings.min_gain_ci_low
    if gi.champion is not None:
        label = f"candidate − champion (version {gi.champion.version}) preference accuracy"
        if gi.evaluated_against != gi.champion.version:
            return [Check(GAIN, None, f"{label}: not measured against the current champion")]
        key = "eval_pref_accuracy_champion_delta"
    else:
        label, key = "candidate − reference preference accuracy", "eval_pref_accuracy_delta"
    few = _too_few(label, gi.metrics.get("eval_prompts"), settings.min_prompts)
    if few is not None:
        return [Check(GAIN, None, few.line)]
    low, high = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    if not (_finite(low) and _finite(high)):
        return [Check(GAIN, None, f"{label}: no 95% interval measured ({key}_ci_low missing)")]
    ok = low > bound
    return [Check(GAIN, ok, f"{label}: {_interval_text(m, key, '{:+.3f}')} on {m['eval_prompts']:.0f} prompts; "
                  f"lower bound {low:+.3f} {'>' if ok else '≤'} {bound:+.3f} (promotion.min_gain_ci_low)")]


def _upper_below(name: str, m: Mapping[str, float], key: str, limit: float, setting: str, fmt: str,
                 n: float | None = None, min_prompts: int | None = None) -> Check:
    """A guard: the upper bound of the quantity's interval must lie below the limit."""
    if min_prompts is not None:
        few = _too_few(name, n, min_prompts)
        if few is not None:
            return few
    high = m.get(f"{key}_ci_high")
    if not (_finite(high) and _finite(m.get(f"{key}_ci_low"))):
        return Check(name, None, f"{name}: no 95% interval measured (limit {fmt.format(limit)}, {setting})")
    ok = high < limit
    return Check(name, ok, f"{name}: {_interval_text(m, key, fmt)}; upper bound {fmt.format(high)} "
                 f"{'<' if ok else '≥'} {fmt.format(limit)} ({setting})")


def _length_drift(m: Mapping[str, float], limit: float, n: float | None, min_prompts: int) -> Check:
    name, key = "answer length candidate/reference", "eval_length_ratio"
    few = _too_few(name, n, min_prompts)
    if few is not None:
        return few
    low, high = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    if not (_finite(low) and _finite(high)):
        return Check(name, None, f"{name}: no 95% interval measured (promotion.max_length_drift)")
    ok = 1 - limit < low and high < 1 + limit
    return Check(name, ok, f"{name}: {_interval_text(m, key, '{:.2f}')} {'within' if ok else 'not within'} "
                 f"({1 - limit:.2f}, {1 + limit:.2f}) (promotion.max_length_drift)")


def _judge(gi: GateInput, settings: PromotionSettings) -> Check:
    limit = settings.min_judge_win_rate
    against = "champion" if gi.champion is not None else "reference"
    if gi.judge_usable is not True:
        why = "no judge ran" if gi.judge_usable is None else (
            "the judge is unusable" + (f" (its held-out accuracy {gi.judge_accuracy:.3f})"
                                       if _finite(gi.judge_accuracy) else ""))
        if settings.require_usable_judge:
            return Check(JUDGED, None, f"{JUDGED}: {why}; promotion.require_usable_judge is on")
        return Check(JUDGED, None, f"{JUDGED}: not counted, {why} (promotion.require_usable_judge is off)",
                     counted=False)
    label = f"{JUDGED} over the {against}"
    few = _too_few(label, gi.metrics.get("eval_judge_prompts"), settings.min_prompts)
    if few is not None:
        return Check(JUDGED, None, few.line)
    m = gi.metrics
    low, high = m.get("eval_judge_win_rate_ci_low"), m.get("eval_judge_win_rate_ci_high")
    if not (_finite(low) and _finite(high)):
        return Check(JUDGED, None, f"{label}: the judge is usable but no win rate interval was measured")
    ok = low > limit
    # The greedy answers decide: they are what the model answers by default. The win rate on sampled answers
    # (eval_judge_sampled_win_rate) is reported beside it, not gated.
    return Check(JUDGED, ok, f"{label}: {_interval_text(m, 'eval_judge_win_rate', '{:.3f}')} on "
                 f"{m['eval_judge_prompts']:.0f} prompts, greedy answers; lower bound {low:.3f} "
                 f"{'>' if ok else '≤'} {limit:.3f} (promotion.min_judge_win_rate)")


# Which way each setting tightens the gate: "min" settings are stricter higher, "max" ones lower;
# null (the check off) is the loosest of all.
_DIRECTION = {"min_prompts": "min", "min_gain_ci_low": "min", "min_judge_win_rate": "min",
              "max_kl_reference": "max", "max_ppl_rise": "max", "max_length_drift": "max",
              "max_degenerate_rise": "max", "require_usable_judge": "flag"}


def looser_settings(now: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[str]:
    """The settings in `now` that are looser than in `recorded`, as 'name recorded → now'."""
    out = []
    for name, direction in _DIRECTION.items():
        if name not in recorded or recorded[name] is None:
            continue  # the check was off (or unknown) then: nothing can be looser
        was, is_ = recorded[name], now.get(name)
        if direction == "flag":
            looser = bool(was) and not is_
        elif is_ is None:
            looser = True
        else:
            looser = is_ < was if direction == "min" else is_ > was
        if looser:
            out.append(f"{name} {json.dumps(was)} → {json.dumps(is_)}")
    return out


def _not_looser(recorded: Mapping[str, Any] | None, settings: PromotionSettings) -> Check:
    name = "promotion settings no looser than at registration"
    if recorded is None:
        return Check(name, None, "the version carries no record of the gate settings it was registered under; "
                     "register it again (alignloop run --force) or promote with --force --reason TEXT")
    looser = looser_settings(settings.gate_values(), recorded)
    recorded_hash = gate_settings_hash(dict(recorded))
    if looser:
        return Check(name, False, f"the settings now are looser than the ones it was registered under "
                     f"({recorded_hash}): {'; '.join(looser)}; restore them, or promote with --force --reason TEXT")
    return Check(name, True, f"settings {settings.gate_hash()}, no looser than at registration ({recorded_hash})")


# --------------------------------------------------------------------------------------------------
# Reading the gate's inputs from what the registry keeps (tags and run metrics of a version)

TAG = "alignloop."


def _version(value: object) -> int | None:
    return None if value in (None, "") else int(value)


def input_from_report(report: Mapping[str, object], champion: Champion | None) -> GateInput:
    """The gate's input for a fresh evaluation report (eval_report.json as a dict)."""
    judge = report.get("judge") or {}
    return GateInput(
        metrics=dict(report.get("metrics") or {}),
        eval_set_hash=report.get("eval_set_hash") or None,
        evaluated_against=_version(report.get("champion_version")),
        champion_set_hash=report.get("champion_eval_set_hash") or None,
        judge_usable=None if not judge else bool(judge.get("usable")),
        judge_accuracy=judge.get("accuracy") if judge else None,
        champion=champion,
    )


def report_tags(report: Mapping[str, object]) -> dict[str, str]:
    """What a version must carry so the gate can be run again at promotion time (see input_from_rows)."""
    judge = report.get("judge") or {}
    against = _version(report.get("champion_version"))
    return {
        "eval_set_hash": str(report.get("eval_set_hash") or ""),
        "evaluated_against": "" if against is None else str(against),
        "champion_eval_set_hash": str(report.get("champion_eval_set_hash") or ""),
        "judge_usable": "" if not judge else str(bool(judge.get("usable"))).lower(),
    }


def verdict_tags(verdict: Verdict) -> dict[str, str]:
    """The verdict and the settings that decided it, as a version's tags."""
    return {"gate.verdict": verdict.verdict, "gate.reasons": "\n".join(verdict.lines),
            "gate.settings_hash": verdict.settings_hash,
            "gate.settings": json.dumps(dict(verdict.settings), sort_keys=True)}


def champion_of(row: Mapping[str, object] | None) -> Champion | None:
    return None if row is None else Champion(int(row["version"]))


def recorded_settings(tags: Mapping[str, str]) -> dict[str, Any] | None:
    """The gate settings a version was registered under (its tags), or None when it carries none."""
    try:
        found = json.loads(tags.get(f"{TAG}gate.settings") or "null")
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def input_from_rows(candidate: Mapping[str, object], champion: Mapping[str, object] | None, *,
                    at_promotion: bool = False) -> GateInput:
    """The gate's input for a registered version (a row of registry.describe) against the champion's row."""
    tags = dict(candidate.get("tags") or {})
    metrics = dict(candidate.get("metrics") or {})
    usable = tags.get(f"{TAG}judge_usable", "")
    return GateInput(
        metrics=metrics,
        eval_set_hash=tags.get(f"{TAG}eval_set_hash") or None,
        evaluated_against=_version(tags.get(f"{TAG}evaluated_against", "")),
        champion_set_hash=tags.get(f"{TAG}champion_eval_set_hash") or None,
        judge_usable=None if usable == "" else usable == "true",
        judge_accuracy=metrics.get("eval_judge_accuracy"),
        champion=champion_of(champion),
        recorded_settings=recorded_settings(tags) if at_promotion else None,
        at_promotion=at_promotion,
    )


def registry_check(settings: PromotionSettings) -> Callable[[Mapping, Mapping | None], Verdict]:
    """The check registry.promote runs: the gate on the candidate's recorded numbers, now, under settings
    no looser than the ones the candidate was registered under."""
    return lambda candidate, champion: decide(input_from_rows(candidate, champion, at_promotion=True), settings)
