"""The results table at the end of ``make run``: rows from metrics.json, "-" where missing."""

from __future__ import annotations

import dataclasses
import json

from matplotlib.figure import Figure

from conftest import ci_config
from course_tools import run

METRICS = {
    "transfer_learning": {"val_accuracy": 0.9, "test_accuracy": 0.93456, "seconds": 41.6},
    "end_to_end": {"seconds": 120.2},  # no test accuracy recorded
    "fine_tuning": {"test_accuracy": 0.951, "seconds": 75.0, "epochs": 5},
    "evaluation": {"auc": 0.99},  # another notebook's key: not a row
}


def test_rows_follow_the_stage_contract_and_show_missing_values_as_a_dash():
    rows = run.results_rows(METRICS)
    assert [row[0] for row in rows] == list(run.RESULT_STAGES.values())
    by_stage = dict(zip(run.RESULT_STAGES, rows, strict=True))
    assert by_stage["from_scratch"][1:] == ("-", "-")
    assert by_stage["transfer_learning"][1:] == ("0.935", "42")
    assert by_stage["end_to_end"][1:] == ("-", "120")
    assert by_stage["fine_tuning"][1:] == ("0.951", "75")


def test_print_results_prints_the_table_and_saves_the_figure(tmp_path, capsys):
    cfg = dataclasses.replace(ci_config(), output_dir=tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    path = run.print_results(cfg)
    assert path == tmp_path / "figures" / "results_table.png" and path.stat().st_size > 0
    printed = capsys.readouterr().out
    assert "head on cached features (04)" in printed and "0.935" in printed
    assert printed.count(" -") >= 3


def test_print_results_without_metrics_shows_every_row_empty(tmp_path, capsys):
    cfg = dataclasses.replace(ci_config(), output_dir=tmp_path)
    run.print_results(cfg)
    lines = capsys.readouterr().out.splitlines()
    for name in run.RESULT_STAGES.values():
        (line,) = [line for line in lines if line.startswith(name)]
        assert line.split()[-2:] == ["-", "-"]


def test_make_run_ends_with_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(run, "execute", lambda path, folder: 1.0)
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    assert run.main(["notebooks/04_transfer_learning.ipynb"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("series finished") < printed.index("fine-tuning (05)")
    assert (tmp_path / "figures" / "results_table.png").is_file()


def test_results_table_figure_holds_every_cell():
    rows = [("a", "0.5", "1"), ("b", "-", "-")]
    figure = run.results_table(rows, ("stage", "test accuracy", "seconds"), title="t")
    assert isinstance(figure, Figure)
    (table,) = figure.axes[0].tables
    texts = {cell.get_text().get_text() for cell in table.get_celld().values()}
    assert {"stage", "a", "0.5", "b", "-"} <= texts


def test_results_table_gives_each_text_room_in_its_cell():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rows = [("head alone, to convergence (05)", "0.950", "3"), ("fine-tuning (05)", "0.950", "16")]
    figure = run.results_table(rows, ("stage", "test accuracy", "seconds"), title="t")
    canvas = FigureCanvasAgg(figure)  # as viz.save draws it
    canvas.draw()
    renderer = canvas.get_renderer()
    (table,) = figure.axes[0].tables
    for cell in table.get_celld().values():
        text = cell.get_text().get_window_extent(renderer)
        box = cell.get_window_extent(renderer)
        assert box.x0 <= text.x0 and text.x1 <= box.x1, cell.get_text().get_text()
