"""`coursepilot eval ...`: golden-set and question-set runs, BEIR, refusal calibration, ranker fitting, ablation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from assistant.apps.cli_common import (
    DEFAULT_DATASET,
    EXIT_OK,
    EXIT_PARTIAL,
    JsonFlag,
    T,
    app,
    emit_json,
    err,
    fail,
    out,
    progress_bar,
    settings_from_env,
)
from assistant.core.errors import CoursePilotError

eval_app = typer.Typer(help="Offline answer-quality evals and public retrieval benchmarks.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("run")
def eval_run(
    dataset: Annotated[
        Path, typer.Argument(help="YAML or JSONL dataset, or a question set (.csv, or .jsonl rows with q and course).")
    ] = DEFAULT_DATASET,
    name: Annotated[
        str | None, typer.Option("--name", help="Run folder name under runs/ (default: timestamp).")
    ] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="Compare with runs/BASELINE.")] = None,
    fail_under: Annotated[
        list[str] | None, typer.Option("--fail-under", help="METRIC=VALUE gate, e.g. hit@5=0.8 (repeatable).")
    ] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where run folders go.")] = Path("runs"),
    fresh: Annotated[bool, typer.Option("--fresh", help="Do not resume an interrupted run of the same name.")] = False,
    split: Annotated[
        str | None, typer.Option("--split", help="Question sets only: keep the rows whose 'split' is this.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a dataset through the same API as the chat UI and write results, summary and reports."""
    from datetime import datetime

    from assistant.pilot import CoursePilot
    from evals.runner import check_thresholds, run_eval

    run_name = name or datetime.now().strftime("run-%Y%m%d-%H%M%S")
    pilot = CoursePilot(settings_from_env())
    try:
        with progress_bar("Evaluating", as_json) as progress:
            task = progress.add_task("eval", total=None)
            summary = run_eval(
                dataset,
                pilot,
                run_name,
                runs_dir=runs_dir,
                baseline=baseline,
                resume=not fresh,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                split=split,
            )
        failures = check_thresholds(summary, fail_under or [])
    except CoursePilotError as exc:
        fail(exc, as_json)
    if as_json:
        emit_json({**summary.model_dump(mode="json"), "gate_failures": failures})
    else:
        table = Table(title=f"Eval run {run_name}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        deltas = summary.baseline.metrics if summary.baseline else {}
        if deltas:
            table.add_column("vs baseline", justify="right")
        for metric, value in summary.metrics.items():
            shown = "—" if value is None else f"{value:.3f}"
            row = [metric, shown]
            if deltas:
                delta = deltas.get(metric)
                change = "" if delta is None or delta.delta is None else f"{delta.delta:+.3f}"
                row.append(f"[red]{change} regression[/]" if delta is not None and delta.regression else change)
            table.add_row(*row)
        out.print(table)
        out.print(f"Reports: {summary.files.get('report_html')} and {summary.files.get('report_md')}")
        for problem in summary.problems:
            err.print(f"[yellow]Left out:[/] {escape(problem)}")
        for regression in summary.regressions:
            err.print(f"[red]Regression:[/] {escape(regression)}")
        for failure in failures:
            err.print(f"[red]Gate failed:[/] {escape(failure)}")
    raise typer.Exit(EXIT_PARTIAL if failures else EXIT_OK)


def _benchmark_job(label: str, dataset_dir: Path, as_json: bool, job: Callable[[Callable[[int, int], None]], T]) -> T:
    """Run a BEIR-folder job under a progress bar; a bad folder or a failed run exits with the message and fix."""
    if not (dataset_dir / "corpus.jsonl").exists():
        fail(
            CoursePilotError(
                f"{dataset_dir} has no corpus.jsonl.", "pass a BEIR dataset folder (corpus, queries, qrels)."
            ),
            as_json,
        )
    try:
        with progress_bar(label, as_json) as progress:
            task = progress.add_task(label, total=None)
            return job(lambda done, total: progress.update(task, completed=done, total=total))
    except CoursePilotError as exc:
        fail(exc, as_json)


@eval_app.command("beir")
def eval_beir(
    dataset_dir: Annotated[Path, typer.Argument(help="A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/).")],
    split: Annotated[str, typer.Option("--split", help="qrels split to score.")] = "test",
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where its index is kept and reused.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score the default retriever on a public BEIR benchmark (nDCG@10, recall@100)."""
    from evals.beir import run_beir

    settings = settings_from_env()
    result = _benchmark_job(
        "BEIR",
        dataset_dir,
        as_json,
        lambda progress: run_beir(dataset_dir, settings, split=split, work_dir=work_dir, progress=progress),
    )
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    out.print(
        f"{result.dataset} ({result.split}, {result.queries} queries, {result.documents} documents): "
        f"nDCG@10 = {result.ndcg_at_10:.4f}, recall@100 = {result.recall_at_100:.4f}, MRR@10 = {result.mrr_at_10:.4f}"
    )
    out.print(
        f"embedding: {result.embedding}; fusion: {result.fusion.model_dump()}; query latency p50 {result.latency_ms_p50:.1f} ms, "
        f"p95 {result.latency_ms_p95:.1f} ms; index {'reused' if result.index_reused else 'built'} "
        f"in {result.seconds_index:.0f} s"
    )


@eval_app.command("calibrate")
def eval_calibrate(
    dataset_dir: Annotated[Path, typer.Argument(help="A BEIR dataset folder with train and test qrels.")],
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where its index is kept and reused.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Choose the refusal thresholds on the train split (exclusion trick) and report them on test."""
    from evals.calibrate import calibrate_refusal

    settings = settings_from_env()
    result = _benchmark_job(
        "Calibrating",
        dataset_dir,
        as_json,
        lambda progress: calibrate_refusal(dataset_dir, settings, work_dir=work_dir, progress=progress),
    )
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    out.print(
        f"refusal_min_dense = {result.refusal_min_dense:.3f}, refusal_min_coverage = {result.refusal_min_coverage:.3f} "
        f"(chosen on {result.tune_split}, objective {result.objective})"
    )
    out.print(f"on {result.eval_split}: {result.test.model_dump()}")


_BENCHMARKS = Path("../shared/benchmarks")


@eval_app.command("fit-ranker")
def eval_fit_ranker(
    openstax_dir: Annotated[
        Path, typer.Option("--openstax", help="The openstax-intro-business benchmark folder.")
    ] = _BENCHMARKS / "openstax-intro-business",
    scifact_dir: Annotated[Path, typer.Option("--scifact", help="The SciFact BEIR folder.")] = _BENCHMARKS / "scifact",
    no_scifact: Annotated[bool, typer.Option("--no-scifact", help="Fit on openstax train only.")] = False,
    work_dir: Annotated[Path, typer.Option("--work-dir", help="Where the benchmark indexes are kept.")] = Path(
        ".coursepilot/benchmarks"
    ),
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write the model files here instead of into the package.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N train questions.")] = None,
    trees: Annotated[
        bool, typer.Option("--trees", help="Also boost LightGBM trees on the linear score (needs lightgbm).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Refit the learned ranker and the calibrated refusal model on the train splits (openstax + SciFact)."""
    from evals.fit import run_fit

    settings = settings_from_env()
    scifact = None if no_scifact else scifact_dir
    try:
        with progress_bar("Fitting", as_json) as progress:
            task = progress.add_task("fit", total=None)
            report = run_fit(
                openstax_dir,
                scifact,
                settings,
                work_dir,
                out_dir=out_dir,
                limit=limit,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                trees=trees,
            )
    except (CoursePilotError, FileNotFoundError) as exc:
        fail(
            exc if isinstance(exc, CoursePilotError) else CoursePilotError(str(exc), "pass the benchmark folders."),
            as_json,
        )
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return
    out.print(f"ranker: {report.ranker_path} ({report.ranker_rows} candidate rows)")
    out.print(
        f"refusal: {report.refusal_path}, threshold {report.refusal_threshold:.4f}; on train "
        f"{report.train_false_refusal_rate:.1%} of answerable refused, {report.train_excluded_refused:.1%} of "
        "excluded-course questions refused"
    )
    out.print(f"refusal on each train set: {report.refusal_train}", markup=False, highlight=False)


@eval_app.command("ablation")
def eval_ablation(
    openstax_dir: Annotated[
        Path | None, typer.Option("--openstax", help="The openstax-intro-business benchmark folder.")
    ] = _BENCHMARKS / "openstax-intro-business",
    scifact_dir: Annotated[Path | None, typer.Option("--scifact", help="The SciFact BEIR folder.")] = _BENCHMARKS
    / "scifact",
    golden: Annotated[Path | None, typer.Option("--golden", help="Golden dataset (YAML).")] = DEFAULT_DATASET,
    golden_library: Annotated[
        Path | None, typer.Option("--golden-library", help="The library the golden set is written against.")
    ] = Path("data/courses"),
    work_dir: Annotated[Path, typer.Option("--work-dir", help="Where the benchmark indexes are kept.")] = Path(
        ".coursepilot/benchmarks"
    ),
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the README table.")] = False,
    split: Annotated[
        str, typer.Option("--split", help="openstax and SciFact split: 'test' (confirm once) or 'train'.")
    ] = "test",
    ceiling: Annotated[
        bool,
        typer.Option(
            "--ceiling", help="Also fit a ranker and a refusal model on each set's own questions (in-sample figures)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Each retrieval component's contribution on SciFact test, openstax test and the golden set, in one run."""
    from evals.ablation import markdown_table, run_ablation

    settings = settings_from_env()
    try:
        with progress_bar("Ablation", as_json) as progress:
            task = progress.add_task("ablation", total=None)
            result = run_ablation(
                settings,
                openstax_dir,
                scifact_dir,
                golden,
                golden_library,
                work_dir,
                split=split,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                ceiling=ceiling,
            )
    except (CoursePilotError, FileNotFoundError) as exc:
        fail(
            exc if isinstance(exc, CoursePilotError) else CoursePilotError(str(exc), "pass the benchmark folders."),
            as_json,
        )
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    if markdown:
        print(markdown_table(result))  # plain: a console wraps long lines, which breaks the table
    else:
        table = Table(title="Retrieval ablation (same index and candidate lists per set)")
        for column in (
            "ranking",
            "SciFact nDCG@10",
            "openstax hit@1",
            "openstax hit@5",
            "golden hit@1",
            "golden hit@5",
        ):
            table.add_column(column, justify="left" if column == "ranking" else "right")
        for row in result.rows:
            cells = [
                row.scifact_ndcg_at_10,
                row.openstax_hit_at_1,
                row.openstax_hit_at_5,
                row.golden_hit_at_1,
                row.golden_hit_at_5,
            ]
            table.add_row(escape(row.name), *("—" if v is None else f"{v:.3f}" for v in cells))
        out.print(table)
    out.print(f"refusal: {result.refusal.model_dump()}", markup=False, highlight=False)
    for name, bound in result.ceiling_refusal.items():
        out.print(f"in-sample: refusal fitted on {name}'s own instances: {bound.model_dump()}", markup=False)
