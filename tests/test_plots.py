"""Every plot a reader understands (issue 11, item 6): title, axis labels with unit and schedule,
readable (non-overlapping, short) tick labels, labelled bands, log scale for proxies spanning
decades, and a Pareto plot naming the objectives it leaves out."""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_report import ARCHS, record, write_run

from natsray.experiment.plots import (
    MANY_RUNS,
    focus_y,
    metric_label,
    plot_best,
    plot_pareto,
    plot_population,
    plot_seeds,
    rolling_quantiles,
)
from natsray.experiment.report import load_run


def table_config(seed: int = 0, objective: Any = "valid_accuracy", hp: str = "12") -> dict:
    return {
        "seed": seed,
        "strategy": {"name": "regularized_evolution"},
        "evaluator": {"type": "table", "table": "t.npz", "hp": hp, "objective": objective},
        "budget": {"simulated_seconds": 20000},
    }


def simulated_run(path: Path, seed: int) -> Path:
    """200 evaluations over 20,000 simulated seconds: the axis that printed '10000125001500017500'."""
    rng = np.random.default_rng(seed)
    records = [
        record(i, float(80 + 10 * rng.random()), sim_finish=100.0 * (i + 1) + seed) for i in range(200)
    ]
    return write_run(path, records, cfg=table_config(seed))


def _readable(fig: Any) -> None:
    """Title, axis labels, and tick labels that are short and do not overlap, on every axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for axis in fig.axes:
        assert axis.get_title(), "no title"
        assert axis.get_xlabel() and axis.get_ylabel()
        for ticks in (axis.get_xticklabels(), axis.get_yticklabels()):
            shown = [t for t in ticks if t.get_text() and t.get_visible()]
            texts = [re.sub(r"\$|\\mathdefault|[{}^]", "", t.get_text()) for t in shown]  # 10^{5} -> 105
            assert all(len(text) <= 8 for text in texts), texts
            boxes = [t.get_window_extent(renderer) for t in shown]
            for a, b in itertools.pairwise(boxes):
                assert not a.overlaps(b), [t.get_text() for t in shown]


def test_metric_labels_name_unit_and_schedule() -> None:
    assert metric_label("valid_accuracy", table_config()) == "valid_accuracy@12 (%)"
    assert metric_label("valid_accuracy", table_config(hp="200")) == "valid_accuracy@200 (%)"
    assert metric_label("test_accuracy@200", table_config()) == "test_accuracy@200 (%)"
    assert metric_label("params", table_config(hp="200")) == "params (M)"  # schedule-independent
    assert metric_label("valid_accuracy", {"evaluator": {"type": "train", "epochs": 3}}) == (
        "valid_accuracy (%, 3 epochs)"
    )
    assert metric_label("synflow", {"evaluator": {"type": "proxy"}}) == "synflow (at init.)"


def test_best_so_far_and_seed_plots_are_readable(tmp_path: Path) -> None:
    runs = [load_run(simulated_run(tmp_path / f"seed-{seed}", seed)) for seed in range(3)]
    groups = {"rea": [0, 1, 2]}
    best = plot_best(runs, groups, tmp_path / "best.png")
    _readable(best)
    assert best.axes[0].get_ylabel() == "best valid_accuracy@12 (%)"
    assert best.axes[1].get_xlabel() == "simulated time (s)"
    seeds = plot_seeds(runs, groups, tmp_path / "seeds.png")
    _readable(seeds)
    labels = seeds.axes[0].get_legend_handles_labels()[1]
    assert labels == ["rea mean (n=3)", "rea ±1 std"]
    lone = plot_seeds(runs, {"rea": [0, 1], "random": [2]}, tmp_path / "lone.png")
    # a one-run group has no spread: no band, so no "random ±1 std" entry drawing nothing
    assert lone.axes[0].get_legend_handles_labels()[1] == [
        "rea mean (n=2)",
        "rea ±1 std",
        "random mean (n=1)",
    ]


def test_population_plot_labels_band_and_uses_log_scale_for_proxies(tmp_path: Path) -> None:
    values = [10.0 ** (5 * i) for i in range(10)]  # synflow-like: 1 .. 1e45
    records = [
        record(i, None, status="ok", objectives={"synflow": v}, fitness=[v]) for i, v in enumerate(values)
    ]
    cfg = {"seed": 0, "evaluator": {"type": "proxy", "objective": ["synflow"]}}
    run = load_run(write_run(tmp_path / "proxy", records, cfg=cfg))
    fig = plot_population(run, tmp_path / "fitness.png")
    _readable(fig)
    axis = fig.axes[0]
    assert axis.get_yscale() == "log" and axis.get_ylabel() == "synflow (at init.), log scale"
    handles, labels = axis.get_legend_handles_labels()
    assert "25-75 % of the window" in labels
    by_label = dict(
        zip(labels, handles, strict=True)
    )  # the band and median over the dots, not hidden by them
    dots = by_label["evaluation"].get_zorder()
    assert by_label["25-75 % of the window"].get_zorder() > dots
    assert by_label[next(label for label in labels if label.startswith("rolling median"))].get_zorder() > dots
    linear = load_run(simulated_run(tmp_path / "acc", 0))
    assert plot_population(linear, tmp_path / "f2.png").axes[0].get_yscale() == "linear"


def test_pareto_plot_names_what_it_leaves_out(tmp_path: Path) -> None:
    points = [(90.0, 1.0, 3.0), (85.0, 0.5, 2.0), (80.0, 0.8, 1.0), (91.0, 1.4, 4.0)]
    records = [
        record(
            i,
            None,
            status="ok",
            objectives={"valid_accuracy": a, "params": p, "flops": f},
            fitness=[a, -p, -f],
        )
        for i, (a, p, f) in enumerate(points)
    ]
    objective = ["valid_accuracy", "params:min", "flops:min"]
    run = load_run(write_run(tmp_path / "r", records, cfg=table_config(objective=objective)))
    fig = plot_pareto(run, tmp_path / "pareto.png")
    _readable(fig)
    axis = fig.axes[0]
    assert "2 of 3 objectives" in axis.get_title() and "not shown: flops:min" in axis.get_title()
    assert axis.get_xlabel() == "valid_accuracy@12 (%), higher is better"
    assert axis.get_ylabel() == "params (M), lower is better"
    two = load_run(write_run(tmp_path / "two", records, cfg=table_config(objective=objective[:2])))
    assert "not shown" not in plot_pareto(two, tmp_path / "p2.png").axes[0].get_title()


@pytest.mark.parametrize("n", [1, 5])
def test_tiny_runs_still_plot(tmp_path: Path, n: int) -> None:
    run = load_run(write_run(tmp_path / "r", [record(i, 80.0 + i) for i in range(n)], cfg=table_config()))
    _readable(plot_population(run, tmp_path / "f.png"))
    assert len(ARCHS) >= 1


@pytest.mark.parametrize(("n", "window", "points"), [(1, 5, 1000), (37, 5, 1000), (5000, 250, 100)])
def test_rolling_quantiles_equal_np_percentile_of_each_trailing_window(
    n: int, window: int, points: int
) -> None:
    values = np.random.default_rng(n).normal(80.0, 5.0, n)
    values[::7] = np.nan  # failed evaluations are left out of the window
    ends, q = rolling_quantiles(values, window, (25, 50, 75), points=points)
    assert ends.size == min(n, points) and ends[-1] == n - 1 and (np.diff(ends) > 0).all()
    for j, end in enumerate(ends):
        chunk = values[max(0, end + 1 - window) : end + 1]
        chunk = chunk[~np.isnan(chunk)]
        expected = np.percentile(chunk, [25, 50, 75]) if chunk.size else np.full(3, np.nan)
        np.testing.assert_array_equal(q[:, j], expected)


def test_pareto_plot_with_infinite_values_counts_them_and_draws_the_finite_front(tmp_path: Path) -> None:
    # naswot is -inf for a cell whose output ignores its input: such a cell (the fastest) is on the front
    points = [(-np.inf, 0.1), (1500.0, 1.0), (1400.0, 0.5), (1600.0, 2.0), (1300.0, 3.0)]
    records = [
        record(i, None, status="ok", objectives={"naswot": s, "latency": t}, fitness=[s, -t])
        for i, (s, t) in enumerate(points)
    ]
    run = load_run(write_run(tmp_path / "r", records, cfg=table_config(objective=["naswot", "latency:min"])))
    fig = plot_pareto(run, tmp_path / "pareto.png")
    _readable(fig)
    axis = fig.axes[0]
    assert "1 cells with an infinite value not shown" in axis.get_title()
    front = axis.get_lines()[0].get_xydata()
    assert sorted(map(tuple, front.tolist())) == [(1400.0, 0.5), (1500.0, 1.0), (1600.0, 2.0)]
    assert np.isfinite(axis.get_xlim()).all() and np.isfinite(axis.get_ylim()).all()


@pytest.mark.parametrize("datasets", [1, 3])
def test_anytime_plot_title_fits_the_figure(tmp_path: Path, datasets: int) -> None:
    """The one-panel anytime plot of a 100-seed run clipped its title on both sides."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from natsray.study.plots import plot_anytime

    x = np.linspace(0.0, 20000.0, 50)
    values = np.random.default_rng(0).random((100, 50)).cumsum(axis=1)
    names = ["cifar10", "cifar100", "ImageNet16-120"][:datasets]
    curves = [("regularized_evolution", name, x, values) for name in names]
    fig = plot_anytime(curves, "test_accuracy@200", "valid_accuracy@12", True, tmp_path / "anytime.png")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    title = fig._suptitle.get_window_extent(canvas.get_renderer())
    assert title.x0 >= 0 and title.x1 <= fig.bbox.width and title.y1 <= fig.bbox.height
    assert "100 seeds" in fig._suptitle.get_text()


def test_anytime_curves_start_where_every_seed_has_a_result(tmp_path: Path) -> None:
    """Before the last seed's first result, a mean and CI over the few seeds with one stretched the
    y axis (two seeds: a CI of ±12.7 standard errors)."""
    from natsray.study.plots import plot_anytime

    x = np.linspace(0.0, 1000.0, 20)
    values = np.tile(np.linspace(90.0, 94.0, 20), (4, 1))
    values[:2, :8] = np.nan  # two seeds' first results at x[8]
    values[2, :8] = 10.0  # an early, poor incumbent of a third seed
    values[3] = np.nan  # a seed with no result at all
    curves = [("rea", "cifar10", x, values)]
    fig = plot_anytime(curves, "test_accuracy@200", "valid_accuracy@12", True, tmp_path / "anytime.png")
    (line,) = fig.axes[0].lines
    assert line.get_xdata()[0] == x[8] and np.allclose(line.get_ydata(), values[0, 8:])
    assert fig.axes[0].get_ylim()[0] > 80  # the early 10.0 stretches nothing
    assert "over 3 seeds" in fig._suptitle.get_text()  # the seed without a result is not counted


def test_anytime_legends_of_many_long_group_names_go_below_the_panels(tmp_path: Path) -> None:
    """Named by every varying axis, four grid points' entries covered the curves inside the panel; they
    are drawn under the x label, the saved image taller to hold them. Small wall-clock times keep their
    decimals on the x axis (``0.02``, not ``0``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from natsray.study.plots import plot_anytime

    x = np.linspace(0.0, 0.08, 20)
    values = np.tile(np.linspace(90.0, 94.0, 20), (3, 1))
    names = [f"strategy={s}, dedup={d}" for s in ("rea", "random") for d in ("none", "arch")]
    curves = [(name, "cifar10", x, values + i) for i, name in enumerate(names)]
    path = tmp_path / "anytime.png"
    fig = plot_anytime(curves, "test_accuracy@200", "valid_accuracy@12", True, path, "wall")
    renderer = FigureCanvasAgg(fig).get_renderer()
    axis = fig.axes[0]
    legend = axis.get_legend().get_window_extent(renderer)
    assert legend.y1 < axis.xaxis.label.get_window_extent(renderer).y0  # below the x label
    assert [t.get_text() for t in axis.get_legend().get_texts()][:2] == [
        f"{names[0]} (mean)",
        f"{names[0]} (95% CI)",
    ]
    from PIL import Image

    assert Image.open(path).size[1] > fig.bbox.height  # the image holds it
    ticks = [axis.xaxis.get_major_formatter()(t) for t in axis.get_xticks() if 0 < t < 0.08]
    assert ticks and all(t.startswith("0.0") for t in ticks)
    assert axis.get_xlabel() == "wall-clock time (s, pauses left out)"


def test_population_plot_and_report_with_infinite_values_warn_nothing(tmp_path: Path) -> None:
    """naswot's -inf in 30 % of the evaluations: no NaN-interpolation warning, a finite rolling median,
    and the title counts the evaluations it cannot draw."""
    import warnings

    from natsray.experiment.report import finalize_run

    rng = np.random.default_rng(0)
    scores = [-np.inf if rng.random() < 0.3 else 1500 + 100 * rng.random() for _ in range(200)]
    records = [
        record(i, None, status="ok", objectives={"naswot": s}, fitness=[s]) for i, s in enumerate(scores)
    ]
    cfg = {
        "seed": 0,
        "strategy": {"name": "regularized_evolution"},
        "evaluator": {"type": "proxy", "objective": ["naswot"]},
    }
    run_dir = write_run(tmp_path / "r", records, cfg=cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fig = plot_population(load_run(run_dir), tmp_path / "population.png")
        finalize_run(run_dir)
    axis = fig.axes[0]
    infinite = int(np.isinf(scores).sum())
    assert f"({infinite} evaluations with an infinite value not shown)" in axis.get_title()
    median = axis.get_lines()[1].get_ydata()
    assert np.isfinite(median).all() and 1500 <= np.min(median) <= np.max(median) <= 1600


def _axis() -> Any:
    from matplotlib.figure import Figure

    return Figure().subplots()


def test_focus_y_fits_the_axis_to_all_but_the_first_tenth_of_the_x_range() -> None:
    x = np.arange(101.0)
    rising = np.where(x < 10, 10.0 + 8.0 * x, 90.0 + 4.0 * (x - 10) / 90)  # 10 % at 0, 90 at 10, 94 at 100
    band = [(x, rising - 0.5), (x, rising + 0.5)]
    axis = _axis()
    axis.plot(x, rising)
    assert focus_y(axis, [(x, rising), *band])
    # from x = 10 on the lines and band edges span 89.5 .. 94.5: that range plus 5 % each side
    assert axis.get_ylim() == pytest.approx((89.25, 94.75))
    flat = _axis()
    flat.plot(x, 90 + x / 100)  # the first tenth adds under 1.5x the late range: left as it was
    before = flat.get_ylim()
    assert not focus_y(flat, [(x, 90 + x / 100)]) and flat.get_ylim() == before
    logged = _axis()
    logged.set_yscale("log")
    assert not focus_y(logged, [(x, rising)])
    assert not focus_y(_axis(), []) and not focus_y(_axis(), [(x, np.full(x.shape, np.nan))])


def test_focus_y_does_not_magnify_a_search_that_barely_moves_after_its_start() -> None:
    # a new user's run: 69.32 -> 83.392 at evaluation 9, then 83.466 and 83.470; an axis of 0.08
    # points made a 0.004 gain fill the panel, with every tick labelled 83.47
    x = np.array([1.0, 4.0, 9.0, 45.0, 98.0, 150.0])
    y = np.array([69.32, 77.65, 83.392, 83.466, 83.470, 83.470])
    assert not focus_y(_axis(), [(x, y)])
    # the 10x quickstart: 83.8 -> 95.75 at evaluation 4, 96 at 615 of 1,000 (0.25 of a 12.2-point climb)
    quickstart = (np.array([1.0, 4.0, 615.0, 1000.0]), np.array([83.8, 95.75, 96.0, 96.0]))
    assert not focus_y(_axis(), [quickstart])


def test_focus_y_counts_the_level_held_across_the_cut_and_each_series_own_range() -> None:
    # a step curve whose last change (evaluation 9) lies before the cut (15) still holds 83 after it
    held = (np.array([0.0, 9.0, 150.0]), np.array([10.0, 83.0, 83.0]))
    steps = np.arange(151.0)
    rising = (steps, np.where(steps < 5, 10.0 + 15.0 * steps, 85.0 + 5.0 * (steps - 5) / 145))  # 85.3-90 late
    axis = _axis()
    assert focus_y(axis, [held, rising]) and axis.get_ylim()[0] < 83.0
    # a 12-evaluation run beside 150-evaluation ones: fitted over its own last 90 %, its end stays in view
    short = (np.arange(1.0, 13.0), np.linspace(40.0, 79.0, 12))
    axis = _axis()
    assert focus_y(axis, [short, rising]) and axis.get_ylim()[0] < 79.0 - 3.0


def test_many_runs_are_thin_translucent_lines_under_their_median(tmp_path: Path) -> None:
    n = MANY_RUNS + 4
    runs = [load_run(simulated_run(tmp_path / f"seed-{seed}", seed)) for seed in range(n)]
    fig = plot_best(runs, {"rea": list(range(n))}, tmp_path / "best.png")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == [f"rea, each run (n={n})", "rea, median"]
    runs_lines, median = fig.axes[0].lines[:n], fig.axes[0].lines[n]
    assert {line.get_alpha() for line in runs_lines} == {MANY_RUNS / n} and median.get_linewidth() == 2
    # the median of the runs' best-so-far at each evaluation count
    x = np.asarray(median.get_xdata())
    final = [np.asarray(line.get_ydata())[-1] for line in runs_lines]
    assert x[-1] == 200 and np.asarray(median.get_ydata())[-1] == pytest.approx(np.median(final))
    few = plot_best(runs[:3], {"rea": [0, 1, 2]}, tmp_path / "few.png")
    assert few.axes[0].get_legend_handles_labels()[1] == ["rea"]
    assert {line.get_alpha() for line in few.axes[0].lines} == {1.0}


def test_anytime_panels_are_fitted_to_the_search_after_its_first_evaluations(tmp_path: Path) -> None:
    from natsray.study.plots import plot_anytime

    x = np.arange(1.0, 201.0)
    mean = 80.0 + 14.0 * (1.0 - np.exp(-x / 40.0))  # 80.3 at the first evaluation, 93.9 at the last
    values = mean[None, :] + np.linspace(-0.2, 0.2, 5)[:, None]  # 5 seeds
    fig = plot_anytime([("rea", "cifar10", x, values)], "test_accuracy@200", "valid_accuracy@12", False,
                       tmp_path / "a.png")  # fmt: skip
    low, high = fig.axes[0].get_ylim()
    # past the first tenth (evaluation 21 on) the band spans about 85.3-94.1; the first evaluations
    # (80.3-85) fall below the axis
    assert 84.5 < low < 85.6 and 94.0 < high < 94.7


def test_anytime_panels_of_one_or_two_seeds_and_of_a_falling_metric(tmp_path: Path) -> None:
    """A new user's 2-seed sweep: its CI band (±12.7 standard errors) ran from below 0 to 105 % and the
    axis held it; a 1-seed one listed a '(95% CI)' entry with nothing drawn; a params sweep's legend sat
    on the curves' ends, and its axis said no unit."""
    from natsray.study.plots import plot_anytime

    x = np.arange(1.0, 101.0)
    rising = 80.0 + 14.0 * (1.0 - np.exp(-x / 20.0))
    two = np.stack([rising - 3.0, rising + 3.0])  # two seeds 6 points apart
    names = ("test_accuracy@200", "valid_accuracy@12", False)
    fig = plot_anytime([("rea", "c", x, two)], *names, tmp_path / "2.png")
    low, high = fig.axes[0].get_ylim()
    assert low > 80 and high < 96  # the means' range, not the band's (about 56-132)
    assert fig.axes[0].get_legend_handles_labels()[1] == ["rea (mean)", "rea (95% CI)"]
    one = plot_anytime([("rea", "c", x, two[:1])], *names, tmp_path / "1.png")
    assert one.axes[0].get_legend_handles_labels()[1] == ["rea (mean)"]
    assert "over 1 seed," in one._suptitle.get_text() or one._suptitle.get_text().endswith("over 1 seed")
    falling = np.stack([1.5 - rising / 100 + d for d in (-0.01, 0.0, 0.01)])  # params, lower is better
    fig = plot_anytime([("rea", "c", x, falling)], "params", "params", False, tmp_path / "p.png")
    assert fig.axes[0].get_legend()._loc == 1  # upper right
    assert fig.axes[0].get_ylabel() == "params (M) of the best cell so far"


def test_spread_bands_stay_within_the_runs_values(tmp_path: Path) -> None:
    """One seed far behind the others: the ±1 std band of ``plot_seeds`` and the 95% CI of the sweep's
    anytime panel reached above the best run and below the worst (values no run had); both are cut to
    the runs' own range at each point, and the axis follows the cut band."""
    from natsray.study.plots import plot_anytime

    runs, best = [], []
    for seed, base in ((0, 80.0), (1, 80.0), (2, 50.0)):
        values = base + 10 * np.random.default_rng(seed).random(60)
        records = [record(i, float(value), sim_finish=100.0 * (i + 1)) for i, value in enumerate(values)]
        runs.append(load_run(write_run(tmp_path / f"s{seed}", records, cfg=table_config(seed))))
        best.append(values.max())
    fig = plot_seeds(runs, {"rea": [0, 1, 2]}, tmp_path / "seeds.png")
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() <= max(best) + 1e-9 and band.min() >= 50.0  # mean + std was about 93.7 at the end
    assert fig.axes[0].get_ylim()[1] < max(best) + 3

    x = np.arange(1.0, 101.0)
    rising = 80.0 + 14.0 * (1.0 - np.exp(-x / 20.0))
    values = np.stack([rising, rising, rising - 30.0])  # the CI is rising - 10 ± 43
    fig = plot_anytime(
        [("rea", "c", x, values)], "test_accuracy@200", "valid_accuracy@12", False, tmp_path / "a.png"
    )
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() <= rising.max() + 1e-9 and band.min() >= rising.min() - 30.0 - 1e-9


def test_an_anytime_legend_never_covers_a_curve(tmp_path: Path) -> None:
    """A report metric that rises, then falls back as the best cell by the objective changes (a new
    user's cifar100 panel): its mean ended under the lower-right legend, hiding the last half of the
    curve. The legend takes the first corner where it covers no curve nor band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from natsray.study.plots import plot_anytime

    x = np.arange(1.0, 101.0)
    mean = np.where(x < 30, 80.0 + 14.0 * x / 30, 81.0)  # up to 94, then down to 81 for the last 70 %
    values = np.stack([mean - 0.05, mean, mean + 0.05])
    fig = plot_anytime(
        [("rea", "c", x, values)], "test_accuracy@200", "valid_accuracy@12", False, tmp_path / "a.png"
    )
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend._loc != 4  # not lower right, where the curve's last 70 % lies
    box = legend.get_window_extent(FigureCanvasAgg(fig).get_renderer())
    points = ax.transData.transform(np.column_stack([x, mean]))
    inside = (
        (points[:, 0] >= box.x0)
        & (points[:, 0] <= box.x1)
        & (points[:, 1] >= box.y0)
        & (points[:, 1] <= box.y1)
    )
    assert not inside.any()
