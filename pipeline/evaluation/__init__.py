"""Evaluation you can trust: a frozen held-out set, paired bootstrap intervals, the champion scored in
the same run, generation checks judged by a graded judge, and guards (KL, length, perplexity).

    bootstrap.py   intervals over prompts (the resampling unit)
    scoring.py     fast teacher-forced scoring, truncation, the reference-score cache
    generation.py  answers the models write themselves
    judge.py       reward-model and endpoint judges, graded on held-out pairs
    guards.py      KL, length drift, perplexity rise
    results.py     EvalReport: metrics (the MLflow contract), eval_report.json, per_pair_scores.jsonl
    candidate.py   evaluate_candidate: all of the above for one candidate

Importing this package does not import torch; import the submodules that score when you need them.
"""
