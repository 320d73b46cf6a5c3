"""`alignloop bench ingest`: how fast the feedback store loads a warehouse, beside two baselines.

One run generates a warehouse of N source rows (generations and feedback events, 60/40), then times,
each in a fresh process so peak memory is its own:
  - alignloop: full load + normalisation (FeedbackStore.ingest) + snapshot + shape profile (FeedbackStore.measure,
    as `alignloop plan` runs it);
  - pandas: a straightforward pandas script doing the same normalisation;
  - raw DuckDB: one plain SQL script doing it (sql/bench/ingest_raw_baseline.sql): the floor.
All three must produce the same canonical rows (checked). Then 1 % more rows are appended and
alignloop's incremental run is timed, and a run with nothing new.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from alignloop.sqlfiles import sql_text

SOURCE = "prod"
USERS = 5000
SPAN_DAYS = 30
CANONICAL_COLUMNS = "event_id, user_id, prompt, completion, label, chosen, rejected"


# ------------------------------------------------------------------------------------------ warehouse
def plan_sizes(rows: int) -> dict[str, int]:
    """Generations and feedback for `rows` source rows: 60 % generations (most answers get no feedback)."""
    n_gen = max(4, math.ceil(rows * 0.6))
    n_fb = max(1, rows - n_gen)
    return {"n_gen": n_gen, "n_fb": n_fb, "n_prompts": max(1, n_gen // 4),
            "step_ms": max(1, SPAN_DAYS * 86_400_000 // n_gen)}


def write_warehouse(path: Path, rows: int) -> dict[str, int]:
    sizes = plan_sizes(rows)
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("CREATE TABLE generations (request_id VARCHAR, ts TIMESTAMP, user_id VARCHAR, "
                    "model_version VARCHAR, messages VARCHAR, response VARCHAR)")
        con.execute("CREATE TABLE feedback_events (event_id VARCHAR, request_id VARCHAR, ts TIMESTAMP, "
                    "user_id VARCHAR, kind VARCHAR, value VARCHAR, other_request_id VARCHAR)")
        _append(con, sizes, 0, sizes["n_gen"], 0, sizes["n_fb"])
    finally:
        con.close()
    return sizes


def _append(con: duckdb.DuckDBPyConnection, sizes: dict[str, int], gen_lo: int, gen_hi: int, fb_lo: int,
            fb_hi: int) -> None:
    common = {"n_prompts": sizes["n_prompts"], "step_ms": sizes["step_ms"], "users": USERS}
    con.execute(sql_text("bench/ingest_warehouse_generations.sql"), {**common, "lo": gen_lo, "hi": gen_hi})
    con.execute(sql_text("bench/ingest_warehouse_feedback.sql"),
                {**common, "lo": fb_lo, "hi": fb_hi, "gen_lo": gen_lo, "gen_hi": gen_hi})


def append_one_percent(path: Path, sizes: dict[str, int]) -> int:
    """Newer generations and feedback on them: 1 % of the warehouse's rows."""
    n_gen, n_fb = max(1, sizes["n_gen"] // 100), max(1, sizes["n_fb"] // 100)
    con = duckdb.connect(str(path))
    try:
        con.execute("SET enable_progress_bar = false")
        _append(con, sizes, sizes["n_gen"], sizes["n_gen"] + n_gen, sizes["n_fb"], sizes["n_fb"] + n_fb)
    finally:
        con.close()
    return n_gen + n_fb


# ------------------------------------------------------------------------------------------ the three runs
def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_alignloop(work: Path, threads: int | None, out: Path, memory_limit: str | None = None) -> dict[str, Any]:
    from alignloop.connectors.duckdb_file import DuckDBConnector, DuckDBSettings
    from alignloop.config import IngestSettings, SourceSettings
    from alignloop.ingest.store import FeedbackStore

    wh = work / "warehouse.duckdb"
    src = SourceSettings(name=SOURCE, options={"path": str(wh)})
    conn = DuckDBConnector(DuckDBSettings(path=wh))
    settings = IngestSettings(threads=threads, memory_limit=memory_limit)
    t0 = time.perf_counter()
    # Ingest is timed from opening the store to closing it: the checkpoint at close is part of it.
    with FeedbackStore(work / "feedback.duckdb") as store:
        result = store.ingest(src, conn, settings=settings)
    t1 = time.perf_counter()
    ingest_peak = _peak_rss()
    with FeedbackStore(work / "feedback.duckdb") as store:
        # As `alignloop plan` measures it: inside the store's DuckDB, under the same memory limit.
        if threads:
            store.con.execute(f"SET threads = {int(threads)}")
        snapshot = store.snapshot()
        store.measure(snapshot, 0.2, memory_limit=memory_limit)
        t2 = time.perf_counter()
        peak = _peak_rss()
        store.con.execute(
            f"COPY (SELECT event_id, user_id, prompt, completion, label, NULL::VARCHAR AS chosen, "
            f"NULL::VARCHAR AS rejected FROM unpaired UNION ALL SELECT event_id, user_id, prompt, NULL, NULL, "
            f"chosen, rejected FROM pairs) TO '{out}' (FORMAT parquet)")
    sizes = json.loads((work / "sizes.json").read_text())
    appended = append_one_percent(wh, sizes)
    t3 = time.perf_counter()
    with FeedbackStore(work / "feedback.duckdb") as store:
        incremental = store.ingest(src, conn, settings=settings)
    t4 = time.perf_counter()
    with FeedbackStore(work / "feedback.duckdb") as store:
        nothing = store.ingest(src, conn, settings=settings)
    t5 = time.perf_counter()
    return {
        "seconds": t2 - t0, "ingest_seconds": t1 - t0, "snapshot_profile_seconds": t2 - t1,
        "peak_rss_bytes": peak, "ingest_peak_rss_bytes": ingest_peak, "quarantined": result.quarantined,
        "incremental_rows_appended": appended, "incremental_seconds": t4 - t3,
        "incremental_rows_added": incremental.unpaired_added + incremental.pairs_added,
        "nothing_new_seconds": t5 - t4, "nothing_new_added": nothing.unpaired_added + nothing.pairs_added,
    }


def run_pandas(work: Path, salt: str, out: Path) -> dict[str, Any]:
    """The same normalisation written the way a data scientist would in pandas."""
    import pandas as pd

    from alignloop.pii import scrub_text

    t0 = time.perf_counter()
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    con.execute("SET enable_progress_bar = false")
    gens = con.execute("SELECT * FROM generations").df()
    fb = con.execute("SELECT * FROM feedback_events").df()
    con.close()
    gens["messages"] = gens["messages"].map(scrub_text)
    gens["response"] = gens["response"].map(scrub_text)

    def parse(text: str) -> list[dict[str, str]] | None:
        try:
            turns = json.loads(text)
        except (TypeError, ValueError):
            return None
        if not isinstance(turns, list) or not turns or not all(
                isinstance(t, dict) and t.get("role") in ("system", "user", "assistant")
                and isinstance(t.get("content"), str) for t in turns) or turns[-1]["role"] != "user":
            return None
        return [{"role": t["role"], "content": t["content"]} for t in turns]

    gens["prompt"] = gens["messages"].map(parse)
    a = gens[["request_id", "messages", "response", "prompt"]].add_prefix("a_")
    b = gens[["request_id", "messages", "response"]].add_prefix("b_")
    df = fb.merge(a, left_on="request_id", right_on="a_request_id", how="left")
    df = df.merge(b, left_on="other_request_id", right_on="b_request_id", how="left")
    found = df["a_request_id"].notna() & df["a_prompt"].notna()
    thumbs = df[found & (df["kind"] == "thumb") & df["value"].isin(["up", "down"])].copy()
    comps = df[found & (df["kind"] == "comparison") & df["value"].isin(["a", "b"]) & df["b_request_id"].notna()
               & (df["a_messages"] == df["b_messages"]) & (df["a_response"] != df["b_response"])].copy()
    thumbs["completion"] = thumbs["a_response"]
    thumbs["label"] = thumbs["value"] == "up"
    thumbs["chosen"] = thumbs["rejected"] = None
    won = comps["value"] == "a"
    comps["chosen"] = comps["a_response"].where(won, comps["b_response"])
    comps["rejected"] = comps["b_response"].where(won, comps["a_response"])
    comps["completion"] = None
    comps["label"] = None
    rows = pd.concat([thumbs, comps], ignore_index=True)
    rows["canonical_id"] = rows["event_id"].map(lambda e: hashlib.md5(f"{SOURCE}:{e}".encode()).hexdigest())
    rows["user_hash"] = rows["user_id"].map(lambda u: hashlib.sha256((salt + u).encode()).hexdigest())

    def norm(s: pd.Series) -> pd.Series:
        return s.fillna("").str.strip().str.replace(r"\s+", " ", regex=True).str.lower()

    prompt_text = rows["a_prompt"].map(lambda p: json.dumps(p, separators=(",", ":")))
    rows["dup_key"] = (rows["user_hash"] + rows["kind"] + norm(prompt_text) + "|" + norm(rows["completion"])
                       + norm(rows["chosen"]) + "|" + rows["label"].map(str) + norm(rows["rejected"]))
    rows = rows.sort_values(["ts", "canonical_id"]).drop_duplicates("dup_key", keep="first")
    result = pd.DataFrame({"event_id": rows["canonical_id"], "user_id": rows["user_hash"], "prompt": rows["a_prompt"],
                           "completion": rows["completion"], "label": rows["label"].astype("boolean"),
                           "chosen": rows["chosen"], "rejected": rows["rejected"]})
    result.to_parquet(out, index=False)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_rss_bytes": _peak_rss()}


def run_raw_duckdb(work: Path, salt: str, threads: int | None, out: Path, memory_limit: str | None = None
                   ) -> dict[str, Any]:
    from alignloop.pii import register_scrub_udfs, scrub_sql

    t0 = time.perf_counter()
    con = duckdb.connect(str(work / "raw.duckdb"))
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute("SET memory_limit = ?", [memory_limit])
    register_scrub_udfs(con)
    con.execute(f"ATTACH '{work / 'warehouse.duckdb'}' AS wh (READ_ONLY)")
    script = sql_text("bench/ingest_raw_baseline.sql").replace(
        "__SCRUB_MESSAGES__", scrub_sql("messages")).replace("__SCRUB_RESPONSE__", scrub_sql("response"))
    con.execute(script, {"salt": salt})
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - t0
    peak = _peak_rss()
    con.execute(f"COPY (SELECT {CANONICAL_COLUMNS} FROM raw_canonical) TO '{out}' (FORMAT parquet)")
    con.close()
    return {"seconds": seconds, "peak_rss_bytes": peak}


# ------------------------------------------------------------------------------------------ harness
def _child(impl: str, work: Path, threads: int | None, memory_limit: str | None = None) -> dict[str, Any]:
    """Run one implementation in a fresh interpreter; its peak memory is then its own."""
    cmd = [sys.executable, "-m", "alignloop.benchmarks.ingest", impl, str(work), str(threads or 0), memory_limit or ""]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"bench ingest: the {impl} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare_outputs(paths: dict[str, Path]) -> dict[str, int]:
    """Row counts of each output; raises when any two differ in content."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # it would print into `--json` output
    counts = {name: con.execute(f"SELECT count(*) FROM '{p}'").fetchone()[0] for name, p in paths.items()}
    names = list(paths)
    ref = names[0]
    for other in names[1:]:
        for x, y in ((ref, other), (other, ref)):
            extra = con.execute(
                f"SELECT count(*) FROM (SELECT {CANONICAL_COLUMNS} FROM '{paths[x]}' EXCEPT ALL "
                f"SELECT {CANONICAL_COLUMNS} FROM '{paths[y]}')").fetchone()[0]
            if extra:
                raise RuntimeError(f"bench ingest: {extra} canonical rows of {x} are not in {y}'s output")
    con.close()
    return counts


def bench_ingest(rows: int, workdir: Path | None = None, threads: int | None = None, repeats: int = 1,
                 memory_limit: str | None = None, baselines: bool = True) -> dict[str, Any]:
    """Run the three implementations `repeats` times on one warehouse; report medians (per-run figures
    under `runs`). Rounds start with a different implementation each time, so a load that changes
    during the run does not always fall on the same one. memory_limit is DuckDB's (alignloop's
    `ingest.memory_limit`, and the raw script's); threads None is DuckDB's default, as `alignloop ingest`
    runs; baselines=False times alignloop alone (sizes where the pandas script does not fit in memory)."""
    import shutil
    import statistics

    from alignloop.ingest.store import FeedbackStore

    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="alignloop-bench-ingest-")
        workdir = Path(tmp.name)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("feedback.duckdb", "raw.duckdb"):
        (work / name).unlink(missing_ok=True)
    runs: list[dict[str, dict[str, Any]]] = []
    try:
        sizes = write_warehouse(work / "warehouse.duckdb", rows)
        (work / "sizes.json").write_text(json.dumps(sizes))
        # alignloop's run appends 1 % to the warehouse: every run starts from this copy.
        shutil.copyfile(work / "warehouse.duckdb", work / "warehouse.original.duckdb")
        with FeedbackStore(work / "feedback.duckdb") as store:
            (work / "salt").write_text(store.user_salt)
        # ... and from this empty store, whose user-id salt the baselines hash with too.
        shutil.copyfile(work / "feedback.duckdb", work / "feedback.empty.duckdb")
        order = ["pandas", "raw", "alignloop"] if baselines else ["alignloop"]
        for r in range(repeats):
            run: dict[str, dict[str, Any]] = {}
            for impl in order[r % len(order):] + order[:r % len(order)]:
                shutil.copyfile(work / "warehouse.original.duckdb", work / "warehouse.duckdb")
                shutil.copyfile(work / "feedback.empty.duckdb", work / "feedback.duckdb")
                (work / "raw.duckdb").unlink(missing_ok=True)
                run[impl] = _child(impl, work, threads, memory_limit)
            runs.append(run)
        outputs = {"alignloop": work / "alignloop.parquet"}
        if baselines:
            outputs.update(pandas=work / "pandas.parquet", raw_duckdb=work / "raw.parquet")
        counts = compare_outputs(outputs)
    finally:
        if tmp is not None:
            tmp.cleanup()

    def med(impl: str, key: str) -> float | None:
        return statistics.median(run[impl][key] for run in runs) if impl in runs[0] else None

    def peak(impl: str, key: str = "peak_rss_bytes") -> int | None:
        return max(run[impl][key] for run in runs) if impl in runs[0] else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a / b, 3)

    def secs(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    ours = {k: med("alignloop", k) for k in ("seconds", "ingest_seconds", "snapshot_profile_seconds",
                                              "incremental_seconds", "nothing_new_seconds")}
    last = runs[-1]["alignloop"]
    return {
        "rows": rows, "generations": sizes["n_gen"], "feedback_events": sizes["n_fb"],
        "threads": threads or int(duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]),
        "repeats": repeats,
        "seconds": round(ours["seconds"], 3), "rows_per_s": round(rows / ours["seconds"]),
        "memory_limit": memory_limit,
        "peak_rss_bytes": peak("alignloop"),
        "ingest_seconds": round(ours["ingest_seconds"], 3),
        "ingest_peak_rss_bytes": peak("alignloop", "ingest_peak_rss_bytes"),
        "snapshot_profile_seconds": round(ours["snapshot_profile_seconds"], 3),
        "pandas_seconds": secs(med("pandas", "seconds")), "pandas_peak_rss_bytes": peak("pandas"),
        "raw_duckdb_seconds": secs(med("raw", "seconds")), "raw_duckdb_peak_rss_bytes": peak("raw"),
        # ratios of medians, and each run's own ratio (same round, same load) beside them
        "speedup_vs_pandas": ratio(med("pandas", "seconds"), ours["seconds"]),
        "raw_duckdb_ratio": ratio(ours["seconds"], med("raw", "seconds")),
        "incremental_rows_appended": last["incremental_rows_appended"],
        "incremental_seconds": round(ours["incremental_seconds"], 3),
        "incremental_ratio": round(statistics.median(
            run["alignloop"]["incremental_seconds"] / run["alignloop"]["ingest_seconds"] for run in runs), 4),
        "nothing_new_seconds": round(ours["nothing_new_seconds"], 3),
        "nothing_new_added": last["nothing_new_added"],
        "canonical_rows": counts["alignloop"], "same_canonical_rows": True,
        "quarantined": last["quarantined"],
        "runs": [{"alignloop_seconds": round(run["alignloop"]["seconds"], 3),
                  "pandas_seconds": secs(run.get("pandas", {}).get("seconds")),
                  "raw_duckdb_seconds": secs(run.get("raw", {}).get("seconds")),
                  "speedup_vs_pandas": ratio(run.get("pandas", {}).get("seconds"), run["alignloop"]["seconds"]),
                  "raw_duckdb_ratio": ratio(run["alignloop"]["seconds"], run.get("raw", {}).get("seconds")),
                  "incremental_seconds": round(run["alignloop"]["incremental_seconds"], 3),
                  "nothing_new_seconds": round(run["alignloop"]["nothing_new_seconds"], 3)} for run in runs],
    }


def print_table(result: dict[str, Any], out: Any) -> None:
    from rich.table import Table

    gib = 1024 ** 3
    table = Table("run", "seconds", "rows/s", "peak memory", "vs alignloop",
                  title=f"ingest of {result['rows']:,} source rows ({result['canonical_rows']:,} canonical rows, "
                        f"identical in all three; medians of {result['repeats']} runs)")
    table.add_row("alignloop (load + normalise + snapshot + profile)", f"{result['seconds']:.2f}",
                  f"{result['rows_per_s']:,}", f"{result['peak_rss_bytes'] / gib:.2f} GiB", "1.00x")
    for name, key in (("pandas script", "pandas"), ("raw DuckDB script", "raw_duckdb")):
        secs = result[f"{key}_seconds"]
        if secs is None:  # baselines not run
            continue
        table.add_row(name, f"{secs:.2f}", f"{round(result['rows'] / secs):,}",
                      f"{result[f'{key}_peak_rss_bytes'] / gib:.2f} GiB", f"{secs / result['seconds']:.2f}x")
    table.add_row(f"alignloop incremental (+{result['incremental_rows_appended']:,} rows)",
                  f"{result['incremental_seconds']:.2f}", "", "", f"{result['incremental_ratio']:.1%} of full ingest")
    table.add_row("alignloop, nothing new", f"{result['nothing_new_seconds']:.2f}", "", "", "")
    out.print(table)


def main(argv: list[str]) -> None:
    impl, work, threads = argv[0], Path(argv[1]), int(argv[2]) or None
    memory_limit = argv[3] if len(argv) > 3 and argv[3] else None
    salt = (work / "salt").read_text()
    if impl == "alignloop":
        result = run_alignloop(work, threads, work / "alignloop.parquet", memory_limit)
    elif impl == "pandas":
        result = run_pandas(work, salt, work / "pandas.parquet")
    else:
        result = run_raw_duckdb(work, salt, threads, work / "raw.parquet", memory_limit)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
