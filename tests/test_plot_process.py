"""The sweep report's figure process (natsray.study.plot_process): same PNG bytes as drawing in
process, and nothing lost when it is gone, slow, interrupted or its parent dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from natsray.study.plot_process import NICENESS, PlotProcess
from natsray.study.plots import plot_anytime


def _jobs(out: Path) -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 1000.0, 50)
    curves = [
        (name, dataset, x, np.maximum.accumulate(rng.random((5, 50)), axis=1) * 100)
        for name in ("rea", "random")
        for dataset in ("cifar10", "cifar100")
    ]
    return [
        (curves, "test_accuracy@200", "valid_accuracy@12", by_time, out / f"{name}.png")
        for by_time, name in ((True, "time"), (False, "evaluations"))
    ]


@pytest.fixture(scope="module")
def plotter() -> Any:
    started = PlotProcess.start()
    if started is None:
        pytest.skip("one core: no plot process")
    yield started
    started.close()


def test_the_child_writes_the_same_png_bytes_as_this_process(plotter: PlotProcess, tmp_path: Path) -> None:
    (tmp_path / "child").mkdir()
    (tmp_path / "here").mkdir()
    for job in _jobs(tmp_path / "child"):
        plotter.submit(job)
    assert plotter.results() == [True, True]
    for job in _jobs(tmp_path / "here"):
        plot_anytime(*job)
    for name in ("time.png", "evaluations.png"):
        assert (tmp_path / "child" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no process priorities here")
def test_the_child_runs_below_its_parents_priority(plotter: PlotProcess, tmp_path: Path) -> None:
    plotter.submit(_jobs(tmp_path)[0])  # answered: the child has set its priority
    assert plotter.results() == [True]
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, plotter._process.pid) == min(mine + NICENESS, 19)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_the_child_imports_nothing_until_a_core_is_free() -> None:
    """Forked sweep workers take every core: the child waits for ``preload`` (or a figure) before it
    imports numpy and matplotlib (CPU the runs would lose), then imports them without a figure."""
    started = PlotProcess.start()
    if started is None:
        pytest.skip("one core: no plot process")
    maps = Path(f"/proc/{started._process.pid}/maps")
    try:
        time.sleep(1.0)  # an eager child would have numpy's extension modules mapped by now
        assert "numpy" not in maps.read_text() and "matplotlib" not in maps.read_text()
        started.preload()
        deadline = time.monotonic() + 60
        while "matplotlib" not in maps.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "matplotlib" in maps.read_text()
    finally:
        started.close()


def test_ctrl_c_is_left_to_the_parent(plotter: PlotProcess, tmp_path: Path) -> None:
    os.kill(plotter._process.pid, signal.SIGINT)  # the terminal sends it to the whole process group
    time.sleep(0.2)
    plotter.submit(_jobs(tmp_path)[0])
    assert plotter.results() == [True]  # still there, still drawing


def test_a_failed_figure_is_reported_for_the_caller_to_draw(plotter: PlotProcess, tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    jobs[0] = (*jobs[0][:4], tmp_path / "no-such-dir" / "time.png")
    for job in jobs:
        plotter.submit(job)
    assert plotter.results() == [False, True]
    assert plotter._process.poll() is None  # one bad job does not end it


def test_no_answer_in_time_stops_the_child_and_answers_all_false(tmp_path: Path) -> None:
    started = PlotProcess.start()
    assert started is not None
    for job in _jobs(tmp_path):
        started.submit(job)
    assert started.results(timeout=0.0) == [False, False]
    assert started._process.poll() is not None  # stopped, not left running
    started.submit(_jobs(tmp_path)[0])  # a dead child takes a job and answers False at once
    assert started.results() == [False]
    started.close()


@pytest.mark.parametrize("where", ["working directory", "sys.path"])
def test_a_folder_named_natsray_does_not_shadow_the_parents_natsray(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m`` searched the working directory first: a user's folder named natsray there (a
    clone, a project) made the child fail ("No module named natsray.study.plot_process"). Nor does
    one put before this natsray on ``sys.path`` after it was imported."""
    stray = tmp_path / "natsray" / "study"
    stray.mkdir(parents=True)
    (tmp_path / "natsray" / "__init__.py").write_text("")
    (stray / "__init__.py").write_text("raise ImportError('the stray natsray was imported')\n")
    monkeypatch.chdir(tmp_path)
    if where == "sys.path":
        monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    started = PlotProcess.start()
    assert started is not None
    started.submit(_jobs(tmp_path)[0])
    assert started.results() == [True]
    started.close()
    assert (tmp_path / "time.png").is_file()


def test_the_child_ends_with_its_parent(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os, sys
        from natsray.study.plot_process import NICENESS, PlotProcess
        child = PlotProcess.start()
        print(child._process.pid, flush=True)
        os._exit(0)  # no close(): as if killed
        """
    )
    parent = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(parent.stdout)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return  # exited; its parent is gone, so nobody reaped it yet
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("the plot process outlived its parent by 60 s")


@pytest.fixture(scope="module")
def swept(full_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-run sweep on a table, its report drawn by natsray.sweep's plot process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_study import base

    import natsray

    out = tmp_path_factory.mktemp("swept") / "sweep"
    return natsray.sweep(base(full_table), out=out, seeds="0-2", parallel=1, progress=False).path


def test_a_sweep_report_whose_plot_process_died_draws_the_same_figures(
    swept: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from natsray.study.report import sweep_report

    child = PlotProcess.start()
    assert child is not None
    child._process.kill()
    child._process.wait()
    sweep_report(swept, tmp_path / "again", plotter=child)
    capsys.readouterr()
    for name in ("anytime_time.png", "anytime_evaluations.png"):  # the first drawn by natsray.sweep's child
        assert (tmp_path / "again" / name).read_bytes() == (swept / "report" / name).read_bytes()


def test_the_report_does_not_import_pandas(swept: Path, tmp_path: Path) -> None:
    """pyarrow imports pandas for a Python scalar or a to_numpy with nulls; the report uses neither."""
    code = (
        "import sys, io, contextlib\n"
        "from natsray.study.report import sweep_report\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    sweep_report({str(swept)!r}, {str(tmp_path / 'again')!r})\n"
        "print('pandas' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert (tmp_path / "again" / "evaluations.parquet").read_bytes() == (
        swept / "report" / "evaluations.parquet"
    ).read_bytes()
