"""De-duplication at the proposal: every strategy evaluates each cell (class) at most once (no Ray)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from toy_evaluator import ToyConfig, assert_kill_and_resume_is_exact, make_config

from natsray.config import BudgetConfig, EngineConfig
from natsray.engine.checkpoint import read_journal
from natsray.engine.runner import run_experiment
from natsray.records import Candidate, Objective
from natsray.search_space import NUM_ARCHS, Arch
from natsray.search_space.canonical import canonical_codes
from natsray.search_space.seen import SeenCells
from natsray.strategies.base import MAX_REDRAWS, Strategy
from natsray.strategies.genetic import GeneticAlgorithmConfig
from natsray.strategies.local_search import LocalSearchConfig
from natsray.strategies.nsga2 import NSGA2Config
from natsray.strategies.predictor_evolution import PredictorEvolutionConfig
from natsray.strategies.random_search import RandomSearchConfig
from natsray.strategies.regularized_evolution import RegularizedEvolution, RegularizedEvolutionConfig

IN_PROCESS = EngineConfig(in_process=True, mode="ordered", batch_size=16)
CLASSES = len(set(canonical_codes().tolist()))
STRATEGIES = {
    "regularized_evolution": RegularizedEvolutionConfig(population=20, sample_size=5),
    "genetic": GeneticAlgorithmConfig(population=20),
    "nsga2": NSGA2Config(population=20),
    "nsga2-screen": NSGA2Config(
        population=50, screen=4, max_train=100
    ),  # fewer rows: this test is about dedup
    "random": RandomSearchConfig(),
    "local_search": LocalSearchConfig(),
    "predictor_evolution": PredictorEvolutionConfig(refit_every=10),  # fewer fits: this test is about dedup
}


def keys(run_dir, dedup: str) -> list[int]:
    table = canonical_codes()
    codes = [Arch.from_str(r["arch"]).code for r in read_journal(run_dir / "evaluations.jsonl")]
    return [int(table[c]) for c in codes] if dedup == "canonical" else codes


def test_seen_cells_counts_classes_and_samples_only_unseen_cells() -> None:
    assert CLASSES == 6466
    seen = SeenCells("canonical")
    arch = Arch.from_code(123)
    assert seen.add(arch) and not seen.add(arch.canonical()) and arch.canonical() in seen
    rng = random.Random(0)
    drawn = [seen.sample_unseen(rng) for _ in range(2000)]
    assert not any(cell in seen for cell in drawn)
    assert (len(seen), seen.total) == (1, CLASSES)


def test_seen_cells_draws_do_not_depend_on_the_order_cells_were_added() -> None:
    cells = [Arch.from_code(code) for code in random.Random(1).sample(range(NUM_ARCHS), 5000)]
    forward, backward = SeenCells("arch"), SeenCells("arch")
    forward.update(cells)
    backward.update(reversed(cells))
    assert [forward.sample_unseen(random.Random(s)) for s in range(50)] == [
        backward.sample_unseen(random.Random(s)) for s in range(50)
    ]


def test_sampling_without_replacement_is_uniform_over_unseen_cells() -> None:
    seen = SeenCells("arch")
    seen.update(Arch.from_code(code) for code in range(NUM_ARCHS - 4))  # 4 cells left
    rng = random.Random(2)
    counts = Counter(seen.sample_unseen(rng).code for _ in range(8000))
    assert set(counts) == set(range(NUM_ARCHS - 4, NUM_ARCHS))
    assert all(1800 < n < 2200 for n in counts.values()), counts


class _Stuck(Strategy):
    """Always draws the same cell: only the fallback can give a novel one."""

    Config = RandomSearchConfig

    def ask(self) -> Candidate | None:
        novel = self._novel(lambda: Arch.from_code(7))
        return None if novel is None else self._propose(novel[0])

    def tell(self, candidate, fitness) -> None:
        pass

    def _state(self):
        return {}

    def _load_state(self, state) -> None:
        pass


def test_a_draw_that_keeps_landing_on_seen_cells_falls_back_to_an_unseen_cell() -> None:
    strategy = _Stuck(RandomSearchConfig(), seed=0)
    strategy.attach_seen(SeenCells("arch"))
    first, second = strategy.ask(), strategy.ask()
    assert first.arch.code == 7 and second.arch.code != 7 and strategy.fallbacks == 1
    strategy.seen.update(Arch.from_code(code) for code in range(NUM_ARCHS))
    assert strategy.ask() is None and strategy.finished
    assert MAX_REDRAWS == 100


def test_without_dedup_the_strategy_draws_exactly_as_before() -> None:
    """dedup: none keeps NATS-Bench's REA: one draw per child, repeats allowed."""
    plain = RegularizedEvolution(RegularizedEvolutionConfig(population=5, sample_size=2), seed=4)
    children = []
    for _ in range(400):
        candidate = plain.ask()
        if candidate is None:
            continue
        children.append(candidate.arch.code)
        plain.tell(candidate, (float(candidate.arch.code % 97),))
    assert len(set(children)) < len(children)  # repeats: nothing filtered them


@pytest.mark.parametrize("dedup", ["arch", "canonical"])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_no_strategy_evaluates_a_cell_twice(tmp_path, name, dedup) -> None:
    two = name.startswith("nsga2")
    objectives = (Objective.parse("score"), Objective.parse("params")) if two else ()
    config = make_config(
        strategy=STRATEGIES[name],
        dedup=dedup,
        engine=IN_PROCESS,
        budget=BudgetConfig(evaluations=1500),
        objectives=objectives,
    )
    summary = run_experiment(config, tmp_path)
    evaluated = keys(tmp_path, dedup)
    assert len(evaluated) == len(set(evaluated)) == summary.evaluations == 1500
    assert summary.cached == 0 and summary.stop_reason == "budget: evaluations"


@pytest.mark.parametrize(
    ("name", "dedup", "total"),
    [
        ("regularized_evolution", "arch", NUM_ARCHS),
        ("random", "canonical", CLASSES),
        ("genetic", "canonical", CLASSES),
    ],
)
def test_a_deduplicating_run_stops_when_every_cell_was_evaluated(tmp_path, name, dedup, total) -> None:
    config = make_config(
        strategy=STRATEGIES[name], dedup=dedup, engine=IN_PROCESS, budget=BudgetConfig(evaluations=20_000)
    )
    summary = run_experiment(config, tmp_path)
    evaluated = keys(tmp_path, dedup)
    assert len(evaluated) == len(set(evaluated)) == summary.evaluations == total
    assert summary.stop_reason == "space exhausted" and summary.cached == 0


def test_without_dedup_the_same_budget_is_spent_in_full(tmp_path) -> None:
    config = make_config(
        strategy=STRATEGIES["regularized_evolution"],
        dedup="none",
        engine=IN_PROCESS,
        budget=BudgetConfig(evaluations=20_000),
    )
    summary = run_experiment(config, tmp_path)
    assert summary.evaluations == 20_000 == len(read_journal(tmp_path / "evaluations.jsonl"))
    assert summary.stop_reason == "budget: evaluations"


@pytest.mark.parametrize("dedup", ["arch", "canonical"])
def test_killed_deduplicating_run_resumes_to_the_uninterrupted_trajectory(tmp_path, dedup) -> None:
    config = make_config(
        strategy=STRATEGIES["regularized_evolution"],
        dedup=dedup,
        engine=IN_PROCESS,
        evaluator=ToyConfig(sleep_s=0.0005),
        budget=BudgetConfig(evaluations=400),
        checkpoint_every=50,
    )
    assert_kill_and_resume_is_exact(config, tmp_path, lines=170)
