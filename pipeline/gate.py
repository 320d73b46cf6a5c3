"""The promotion gate: may a challenger become champion? A pure function of what its evaluation
measured, the `promotion` settings and the champion it would replace; every check says why, one line
each, so the verdict reads the same in the CLI, in the version's tags and on the review page.

Verdicts: "pass" (every configured check cleared), "fail" (a check measured and missed), and
"unmeasured" (a configured check has no number, or the challenger was not evaluated on the champion's
set or against the current champion). Only "pass" lets a version be promoted without --force.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from alignloop.config import PromotionSettings

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
    eval_set_hash: str | None


@dataclass(frozen=True)
class GateInput:
    """What the gate reads about one challenger."""

    metrics: Mapping[str, float]
    eval_set_hash: str | None
    evaluated_against: int | None = None      # champion version its evaluation compared with, if any
    judge_usable: bool | None = None          # None: no judge ran
    judge_accuracy: float | None = None
    champion: Champion | None = None          # the current champion (None: there is none)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def lines(self) -> list[str]:
        return [f"{c.mark}: {c.line}" for c in self.checks]

    def to_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict, "reasons": self.lines}


def decide(gate_input: GateInput, settings: PromotionSettings) -> Verdict:
    """Run every configured check; the verdict is fail if any failed, else unmeasured if any had no
    number, else pass."""
    checks = [_same_set(gate_input), *_gain(gate_input, settings)]
    m = gate_input.metrics
    if settings.max_kl_reference is not None:
        checks.append(_at_most("KL from the reference (nats per answer)", m.get("eval_kl_reference"),
                               settings.max_kl_reference, "promotion.max_kl_reference", fmt="{:.3f}"))
    if settings.max_ppl_rise is not None:
        checks.append(_at_most("perplexity rise on the capability text", m.get("eval_ppl_rise"),
                               settings.max_ppl_rise, "promotion.max_ppl_rise", fmt="{:+.1%}"))
    if settings.max_length_drift is not None:
        ratio = m.get("eval_length_ratio")
        drift = None if ratio is None or not _finite(ratio) else abs(ratio - 1.0)
        checks.append(_at_most("answer length drift |candidate/reference − 1|", drift,
                               settings.max_length_drift, "promotion.max_length_drift", fmt="{:.1%}"))
    if settings.min_judge_win_rate is not None:
        checks.append(_judge(gate_input, settings))
    outcomes = [c.passed for c in checks if c.counted]
    verdict = FAIL if False in outcomes else UNMEASURED if None in outcomes else PASS
    return Verdict(verdict, tuple(checks))


def _finite(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _same_set(gi: GateInput) -> Check:
    name = "same evaluation set as the champion"
    if gi.eval_set_hash is None:
        return Check(name, None, "the challenger has no eval-set hash: evaluate it (alignloop evaluate)")
    if gi.champion is None:
        return Check(name, True, f"no champion yet; evaluated on set {gi.eval_set_hash}")
    if gi.champion.eval_set_hash and gi.champion.eval_set_hash != gi.eval_set_hash:
        return Check(name, None, f"evaluated on set {gi.eval_set_hash}, the champion (version {gi.champion.version}) "
                     f"on set {gi.champion.eval_set_hash}: their numbers do not compare; evaluate both on one set "
                     "(alignloop run --force)")
    return Check(name, True, f"set {gi.eval_set_hash}, as the champion's")


def _gain(gi: GateInput, settings: PromotionSettings) -> list[Check]:
    """The preference-accuracy gain's interval: against the champion when there is one."""
    if settings.min_gain_ci_low is None:
        return []
    m, bound = gi.metrics, settings.min_gain_ci_low
    if gi.champion is not None:
        name = f"candidate − champion (version {gi.champion.version}) preference accuracy"
        if gi.evaluated_against != gi.champion.version:
            against = "no champion" if gi.evaluated_against is None else f"version {gi.evaluated_against}"
            return [Check(name, None, f"{name}: evaluated against {against}, not the current champion; "
                          "evaluate again (alignloop run --force)")]
        key = "eval_pref_accuracy_champion_delta"
    else:
        name, key = "candidate − reference preference accuracy", "eval_pref_accuracy_delta"
    value, low, high = m.get(key), m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    if not _finite(low):
        return [Check(name, None, f"{name}: no 95% interval measured ({key}_ci_low missing)")]
    shown = f"{value:+.3f} " if _finite(value) else ""
    span = f"[{low:+.3f}, {high:+.3f}]" if _finite(high) else f"low {low:+.3f}"
    ok = low >= bound
    rel = "≥" if ok else "<"
    return [Check(name, ok, f"{name}: {shown}95% CI {span}; lower bound {low:+.3f} {rel} {bound:+.3f} "
                  "(promotion.min_gain_ci_low)")]


def _at_most(name: str, value: float | None, limit: float, setting: str, fmt: str) -> Check:
    if not _finite(value):
        return Check(name, None, f"{name}: not measured (limit {fmt.format(limit)}, {setting})")
    ok = value <= limit
    return Check(name, ok, f"{name}: {fmt.format(value)} {'≤' if ok else '>'} {fmt.format(limit)} ({setting})")


def _judge(gi: GateInput, settings: PromotionSettings) -> Check:
    name, limit = "judged win rate", settings.min_judge_win_rate
    against = "champion" if gi.champion is not None else "reference"
    if gi.judge_usable is not True:
        why = "no judge ran" if gi.judge_usable is None else (
            "the judge is unusable" + (f" (its held-out accuracy {gi.judge_accuracy:.3f})"
                                       if _finite(gi.judge_accuracy) else ""))
        if settings.require_usable_judge:
            return Check(name, None, f"{name}: {why}; promotion.require_usable_judge is on")
        return Check(name, None, f"{name}: not counted, {why} (promotion.require_usable_judge is off)",
                     counted=False)
    rate = gi.metrics.get("eval_judge_win_rate")
    if not _finite(rate):
        return Check(name, None, f"{name}: the judge is usable but no win rate was measured")
    ok = rate >= limit
    low, high = gi.metrics.get("eval_judge_win_rate_ci_low"), gi.metrics.get("eval_judge_win_rate_ci_high")
    span = f" (95% CI [{low:.3f}, {high:.3f}])" if _finite(low) and _finite(high) else ""
    return Check(name, ok, f"{name} over the {against}: {rate:.3f}{span} {'≥' if ok else '<'} {limit:.3f} "
                 "(promotion.min_judge_win_rate)")


# --------------------------------------------------------------------------------------------------
# Reading the gate's inputs from what the registry keeps (tags and run metrics of a version)

TAG = "alignloop."


def input_from_report(report: Mapping[str, object], champion: Champion | None) -> GateInput:
    """The gate's input for a fresh evaluation report (eval_report.json as a dict)."""
    judge = report.get("judge") or {}
    against = report.get("champion_version")
    return GateInput(
        metrics=dict(report.get("metrics") or {}),
        eval_set_hash=report.get("eval_set_hash") or None,
        evaluated_against=None if against in (None, "") else int(against),
        judge_usable=None if not judge else bool(judge.get("usable")),
        judge_accuracy=judge.get("accuracy") if judge else None,
        champion=champion,
    )


def report_tags(report: Mapping[str, object]) -> dict[str, str]:
    """What a version must carry so the gate can be run again at promotion time (see input_from_rows)."""
    judge = report.get("judge") or {}
    against = report.get("champion_version")
    return {
        "eval_set_hash": str(report.get("eval_set_hash") or ""),
        "evaluated_against": "" if against in (None, "") else str(int(against)),
        "judge_usable": "" if not judge else str(bool(judge.get("usable"))).lower(),
    }


def champion_of(row: Mapping[str, object] | None) -> Champion | None:
    if row is None:
        return None
    return Champion(int(row["version"]), (row.get("tags") or {}).get(f"{TAG}eval_set_hash") or None)


def input_from_rows(candidate: Mapping[str, object], champion: Mapping[str, object] | None) -> GateInput:
    """The gate's input for a registered version (a row of registry.describe) against the champion's row."""
    tags = dict(candidate.get("tags") or {})
    metrics = dict(candidate.get("metrics") or {})
    usable = tags.get(f"{TAG}judge_usable", "")
    against = tags.get(f"{TAG}evaluated_against", "")
    return GateInput(
        metrics=metrics,
        eval_set_hash=tags.get(f"{TAG}eval_set_hash") or None,
        evaluated_against=int(against) if against else None,
        judge_usable=None if usable == "" else usable == "true",
        judge_accuracy=metrics.get("eval_judge_accuracy"),
        champion=champion_of(champion),
    )


def registry_check(settings: PromotionSettings):
    """The check registry.promote runs: the gate on the candidate's recorded numbers, now."""
    return lambda candidate, champion: decide(input_from_rows(candidate, champion), settings)
