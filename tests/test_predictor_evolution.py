"""Predictor-guided evolution: config, surrogate, ask/tell semantics, determinism, resume (no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy_evaluator import ToyConfig, assert_kill_and_resume_is_exact, make_config

from natsray.config import BudgetConfig, EngineConfig
from natsray.engine.checkpoint import read_journal
from natsray.search_space import Arch, encode_many, neighbours
from natsray.search_space.canonical import canonical_codes
from natsray.search_space.seen import SeenCells
from natsray.strategies import strategy_class
from natsray.strategies.predictor_evolution import (
    PredictorEvolution,
    PredictorEvolutionConfig,
    acquisition_scores,
    ball,
)
from natsray.strategies.surrogate import SurrogateConfig, make_surrogate, transform_targets

IN_PROCESS = EngineConfig(in_process=True, mode="ordered", batch_size=4)


def signal(arch: Arch) -> float:
    """A smooth-ish landscape with a unique optimum: convs count, plus a small per-cell hash."""
    return sum(op.startswith("nor_conv") for op in arch.ops) + (arch.code * 7919 % 1000) / 10_000


def drive(strategy: PredictorEvolution, steps: int, fail=lambda c: False) -> list[int]:
    """Sequential ask/tell; returns the proposed codes."""
    codes = []
    for _ in range(steps):
        candidate = strategy.ask()
        assert candidate is not None
        codes.append(candidate.arch.code)
        strategy.tell(candidate, None if fail(candidate) else (signal(candidate.arch),))
    return codes


def test_registered_and_config_errors_name_the_field() -> None:
    assert strategy_class("predictor_evolution") is PredictorEvolution
    bad = [("num_init", 0), ("radius", 3), ("kappa", -1.0), ("max_train", 0), ("its_share", 1.5)]
    for field, value in bad:
        with pytest.raises(ValueError, match=f"^{field}: "):
            PredictorEvolutionConfig(**{field: value})
    with pytest.raises(ValueError, match=r"^acquisition: .*got 'pi'"):
        PredictorEvolutionConfig(acquisition="pi")
    with pytest.raises(ValueError, match=r"^target: .*got 'exp'"):
        PredictorEvolutionConfig(target="exp")
    with pytest.raises(ValueError, match=r"^candidates: .*got 'some'"):
        PredictorEvolutionConfig(candidates="some")


def test_target_transforms_keep_the_order_and_tame_the_bad_tail() -> None:
    y = np.array([10.0, 91.0, 93.5, 92.0, 93.0, 11.0])  # two diverged cells, four good ones
    for kind in ("standard", "rank", "log"):
        t = transform_targets(y, kind)
        assert list(np.argsort(t, kind="stable")) == list(np.argsort(y, kind="stable"))
        assert abs(t.mean()) < 1e-9
    rank = transform_targets(y, "rank")
    assert np.allclose(np.sort(rank), -np.sort(rank)[::-1])  # normal scores: symmetric about 0
    gap = np.diff(np.sort(rank))  # equally spaced-ish normal scores: the 10 % cells do not stretch the scale
    assert gap.max() / gap.min() < 3
    standard = np.diff(np.sort(transform_targets(y, "standard")))
    assert standard.max() / standard.min() > 50
    with pytest.raises(ValueError, match=r"^target: "):
        transform_targets(y, "exp")


def test_ball_holds_exactly_the_cells_within_the_radius() -> None:
    for code in (0, 777, 15_624):
        arch = Arch.from_code(code)
        assert set(ball(1)[code].tolist()) == {n.code for n in neighbours(arch)}
        two = set(ball(2)[code].tolist())
        assert len(two) == 264 and code not in two
        distances = {
            sum(a != b for a, b in zip(arch.op_indices, Arch.from_code(c).op_indices, strict=True))
            for c in two
        }
        assert distances == {1, 2}


def test_gp_surrogate_interpolates_and_is_unsure_far_from_data() -> None:
    train = [Arch.from_code(c) for c in range(0, 15_625, 97)]
    x = encode_many(train)
    y = np.array([signal(a) for a in train])
    model = make_surrogate(SurrogateConfig(kind="gp"))
    model.fit(x, y, seed=0)
    mean, std = model.predict(x)
    assert np.corrcoef(mean, y)[0, 1] > 0.95
    far = encode_many([Arch.from_code(c) for c in (1, 50, 3001)])
    assert model.predict(far)[1].mean() > std.mean()


def test_mlp_surrogate_is_bit_reproducible() -> None:
    pytest.importorskip("torch")
    train = [Arch.from_code(c) for c in range(0, 15_625, 311)]
    x, y = encode_many(train, "path"), np.array([signal(a) for a in train])
    config = SurrogateConfig(kind="mlp", members=2, epochs=10)
    first, second = make_surrogate(config), make_surrogate(config)
    first.fit(x, y, seed=4)
    second.fit(x, y, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first.predict(x), second.predict(x), strict=True))
    assert first.predict(x)[1].max() > 0  # the members disagree somewhere: an uncertainty


def test_acquisitions_rank_as_documented() -> None:
    mean, std = np.array([1.0, 0.9, 0.0]), np.array([0.0, 0.5, 0.1])
    rng = np.random.default_rng(0)
    assert np.argmax(acquisition_scores("mean", mean, std, best=1.0, kappa=2, rng=rng)) == 0
    assert np.argmax(acquisition_scores("ucb", mean, std, best=1.0, kappa=2, rng=rng)) == 1
    ei = acquisition_scores("ei", mean, std, best=1.0, kappa=2, rng=rng)
    assert ei[1] > ei[0] >= 0 and ei[2] < 1e-6
    # ei+its: one uniform picks the acquisition of the whole ranking
    kw = {"best": 1.0, "kappa": 2}
    mixed = acquisition_scores("ei+its", mean, std, rng=np.random.default_rng(3), its_share=0.0, **kw)
    assert np.array_equal(mixed, ei)
    rng = np.random.default_rng(3)
    rng.random()
    its = acquisition_scores("its", mean, std, rng=rng, **kw)
    mixed = acquisition_scores("ei+its", mean, std, rng=np.random.default_rng(3), its_share=1.0, **kw)
    assert np.array_equal(mixed, its) and not np.array_equal(its, ei)


def test_same_seed_same_proposals_and_the_search_climbs() -> None:
    config = PredictorEvolutionConfig(num_init=5)
    a, b = drive(PredictorEvolution(config, seed=1), 40), drive(PredictorEvolution(config, seed=1), 40)
    assert a == b and a != drive(PredictorEvolution(config, seed=2), 40)
    # guided: the last proposals are far better than the random initial design
    scores = [signal(Arch.from_code(c)) for c in a]
    assert max(scores[5:]) > max(scores[:5]) and np.mean(scores[-10:]) > np.mean(scores[:5]) + 1


def test_never_proposes_a_cell_twice_without_dedup() -> None:
    strategy = PredictorEvolution(PredictorEvolutionConfig(num_init=5, radius=1, parents=1), seed=0)
    codes = drive(strategy, 200)
    assert len(set(codes)) == 200


def test_with_canonical_dedup_proposes_only_unseen_classes() -> None:
    seen = SeenCells("canonical")
    blocked = [Arch.from_code(c) for c in range(0, 15_625, 3)]
    seen.update(blocked)
    strategy = PredictorEvolution(PredictorEvolutionConfig(num_init=5), seed=0)
    strategy.attach_seen(seen)
    table = canonical_codes()
    blocked_keys = {int(table[a.code]) for a in blocked}
    keys = [int(table[c]) for c in drive(strategy, 80)]
    assert len(set(keys)) == 80 and not blocked_keys & set(keys)


def test_out_of_order_tells_fit_the_same_model() -> None:
    """The told SET decides the next proposals, not the order results arrived in."""
    config = PredictorEvolutionConfig(num_init=6)
    runs = []
    for order in (list, lambda xs: list(reversed(xs))):
        strategy = PredictorEvolution(config, seed=5)
        batch = [strategy.ask() for _ in range(6)]
        assert strategy.ask() is None  # waits for the initial design
        for candidate in order(batch):
            strategy.tell(candidate, (signal(candidate.arch),))
        in_flight = [strategy.ask() for _ in range(4)]  # several in flight from one ranking
        for candidate in order(in_flight):
            strategy.tell(candidate, (signal(candidate.arch),))
        runs.append([c.arch.code for c in batch + in_flight] + drive(strategy, 5))
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == len(runs[0])


def test_failures_are_replaced_in_the_design_and_never_trained_on() -> None:
    strategy = PredictorEvolution(PredictorEvolutionConfig(num_init=4), seed=0)
    failing = set()

    def fail(candidate):
        if candidate.id < 3 or candidate.id % 4 == 0:
            failing.add(candidate.id)
            return True
        return False

    codes = drive(strategy, 30, fail)
    assert len(set(codes)) == 30  # a failed cell is not proposed again
    state = strategy.state_dict()
    assert not failing & {m[0]["id"] for m in state["strategy"]["members"]}
    assert not failing & set(state["strategy"]["fit_ids"])
    assert len(state["strategy"]["members"]) == 30 - len(failing)


@pytest.mark.parametrize("cut", [3, 12, 25])
def test_state_dict_restores_exactly(cut: int) -> None:
    config = PredictorEvolutionConfig(num_init=5, refit_every=4)  # a ranking outlives some asks
    reference = PredictorEvolution(config, seed=3)
    whole = drive(reference, cut + 30)
    first = PredictorEvolution(config, seed=3)
    head = drive(first, cut)
    restored = PredictorEvolution(config, seed=3)
    restored.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert head + drive(restored, 30) == whole


def test_killed_engine_run_resumes_to_the_uninterrupted_trajectory(tmp_path) -> None:
    config = make_config(
        strategy=PredictorEvolutionConfig(num_init=5),
        dedup="none",
        engine=IN_PROCESS,
        evaluator=ToyConfig(sleep_s=0.002),
        budget=BudgetConfig(evaluations=70),
        checkpoint_every=10,
    )
    assert_kill_and_resume_is_exact(config, tmp_path, lines=33)
    codes = [Arch.from_str(r["arch"]).code for r in read_journal(tmp_path / "whole" / "evaluations.jsonl")]
    assert len(codes) == 70 and len(set(codes)) == 70  # no duplicate evaluations even with dedup: none


@pytest.mark.parametrize("mode", ["ordered", "simulated"])
def test_ctrl_c_halfway_through_an_ask_resumes_to_the_uninterrupted_trajectory(
    tmp_path, monkeypatch, mode
) -> None:
    """A Ctrl-C lands wherever the driver is, most often inside the surrogate's fit: the half-updated
    strategy must not be checkpointed (it was, and the resumed run proposed other cells)."""
    from toy_evaluator import trajectory

    from natsray.engine.runner import run_experiment

    engine = IN_PROCESS if mode == "ordered" else EngineConfig(mode="simulated", simulated_workers=2)
    config = make_config(
        strategy=PredictorEvolutionConfig(num_init=5, explore=20),
        dedup="none",
        engine=engine,
        budget=BudgetConfig(evaluations=60),
        checkpoint_every=7,
    )
    run_experiment(config, tmp_path / "whole")
    fit = PredictorEvolution._fit
    calls = []

    def interrupted_fit(self, *, refit):
        calls.append(refit)
        if len(calls) == 25:
            self.fits += 1  # a fit half done: counted, model not built
            self._fit_ids = sorted(self._members)
            raise KeyboardInterrupt
        return fit(self, refit=refit)

    monkeypatch.setattr(PredictorEvolution, "_fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "stopped")
    monkeypatch.setattr(PredictorEvolution, "_fit", fit)
    assert 0 < len(read_journal(tmp_path / "stopped" / "evaluations.jsonl")) < 60
    run_experiment(config, tmp_path / "stopped", resume=True)
    assert trajectory(tmp_path / "stopped") == trajectory(tmp_path / "whole")


def test_exhausted_parents_hand_over_to_the_next_best_not_to_every_member() -> None:
    strategy = PredictorEvolution(PredictorEvolutionConfig(num_init=8, parents=1, explore=0), seed=0)
    drive(strategy, 8)
    ordered = sorted(strategy._members.values(), key=lambda m: (-m[1][0], m[0].id))
    best, second = (m[0].arch.code for m in ordered[:2])
    strategy._proposed.update(ball(1)[best].tolist())
    pool = strategy._evolved()
    assert pool and set(pool) <= set(ball(1)[second].tolist()) - strategy._proposed
    assert set(pool.values()) == {ordered[1][0].id}


def test_whole_space_candidates_propose_the_model_argmax() -> None:
    config = PredictorEvolutionConfig(num_init=6, candidates="all", acquisition="mean", target="rank")
    strategy = PredictorEvolution(config, seed=2)
    drive(strategy, 6)
    members = [strategy._members[i] for i in sorted(strategy._members)]
    model = make_surrogate(SurrogateConfig(target="rank"))
    model.fit(encode_many([c.arch for c, _ in members]), np.array([f[0] for _, f in members]), seed=0)
    mean = model.predict(encode_many([Arch.from_code(c) for c in range(15_625)]))[0]
    mean[[c.arch.code for c, _ in members]] = -np.inf
    assert strategy.ask().arch.code == int(np.argmax(mean))
    codes = drive(strategy, 20)
    assert len(set(codes)) == 20 and not set(codes) & {c.arch.code for c, _ in members}


def test_stall_spends_one_ranking_per_stall_results_on_the_whole_space() -> None:
    """Every ``stall``-th success without improvement ranks every unproposed cell, as ``candidates: all``."""
    kw = {"num_init": 6, "acquisition": "mean", "explore": 0}
    config = PredictorEvolutionConfig(stall=3, **kw)
    strategy = PredictorEvolution(config, seed=4)
    stalled = []
    for _ in range(60):
        stalled.append(strategy._stalled())
        if stalled[-1]:
            break
        drive(strategy, 1)
    assert stalled[-1] and not any(stalled[:-1])
    members = strategy._members
    best = max(members, key=lambda i: (members[i][1][0], -i))
    assert sum(i > best for i in members) == 3  # three results since the last improvement
    state = json.loads(json.dumps(strategy.state_dict()))
    whole = PredictorEvolution(PredictorEvolutionConfig(candidates="all", stall=0, **kw), seed=4)
    local = PredictorEvolution(PredictorEvolutionConfig(stall=0, **kw), seed=4)
    whole.load_state_dict(state)
    local.load_state_dict(state)
    proposal, reference, neighbour = strategy.ask(), whole.ask(), local.ask()
    assert (proposal.arch, proposal.parents) == (reference.arch, ()) and neighbour.parents  # not a neighbour
    strategy.tell(strategy.ask(), (-1.0,))  # a fourth result without improvement: back to neighbourhoods
    assert not strategy._stalled()
    with pytest.raises(ValueError, match=r"^stall: .*got -1"):
        PredictorEvolutionConfig(stall=-1)


def test_mixed_candidates_rank_the_whole_space_for_its_and_the_neighbourhoods_for_ei() -> None:
    """``candidates: mixed``: a Thompson-sampling ranking scores every unproposed cell (as ``all``), an
    expected-improvement ranking only the neighbourhoods (+ ``explore``)."""
    kw = {"num_init": 6, "acquisition": "ei+its"}
    mixed = PredictorEvolution(PredictorEvolutionConfig(candidates="mixed", its_share=1.0, **kw), seed=2)
    whole = PredictorEvolution(PredictorEvolutionConfig(candidates="all", its_share=1.0, **kw), seed=2)
    assert drive(mixed, 30) == drive(whole, 30)
    local = PredictorEvolution(
        PredictorEvolutionConfig(candidates="mixed", its_share=0.0, explore=0, **kw), seed=2
    )
    drive(local, 6)
    for _ in range(20):
        candidate = local.ask()
        (parent,) = candidate.parents  # a neighbour of a told member, never a cell from elsewhere
        assert candidate.arch in neighbours(local._members[parent][0].arch)
        local.tell(candidate, (signal(candidate.arch),))
