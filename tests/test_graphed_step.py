"""``evaluator.cuda_graphs``: the captured SGD step's arithmetic (CPU) and the captured training (CUDA).

On CPU :class:`GraphedSGDStep` runs every step eagerly, the very update that a CUDA graph
captures; it is checked against ``torch.optim.SGD``. The CUDA tests (skipped without a GPU)
check that replaying the graph computes what the eager steps compute, bit for bit under
``deterministic``, and that a whole candidate's training gives the eager path's metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from natsray.evaluators import training
from natsray.evaluators.costs import seeded_model
from natsray.evaluators.graphed_step import WARMUP_STEPS, GraphedSGDStep
from natsray.evaluators.training import TrainingConfig, TrainingEvaluator
from natsray.records import Candidate
from natsray.search_space import Arch

CELL = Arch.from_str(
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _batches(device: str, sizes: list[int], seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    images = [torch.randn(n, 3, 8, 8, generator=generator) for n in sizes]
    labels = [torch.randint(0, 10, (n,), generator=generator) for n in sizes]
    return [(x.to(device), y.to(device)) for x, y in zip(images, labels, strict=True)]


def _step(model, optimizer, capture: bool, batch_size: int, **sgd) -> GraphedSGDStep:
    return GraphedSGDStep(
        model, optimizer, batch_size=batch_size, autocast=contextlib.nullcontext, capture=capture, **sgd
    )


@pytest.mark.parametrize(
    "sgd",
    [
        {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        {"momentum": 0.9, "nesterov": False, "weight_decay": 0.0},
        {"momentum": 0.0, "nesterov": False, "weight_decay": 1e-3},
    ],
)
def test_the_captured_update_is_torch_sgd(sgd: dict) -> None:
    torch.set_num_threads(1)
    ours = seeded_model(CELL, 3, C=4, N=1, num_classes=10)
    theirs = seeded_model(CELL, 3, C=4, N=1, num_classes=10)
    ours_opt = torch.optim.SGD(ours.parameters(), lr=0.1, **sgd)
    theirs_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, **sgd)
    step = _step(ours, ours_opt, False, 16, **sgd)
    loss_sum, correct = 0.0, 0
    for i, (images, labels) in enumerate(_batches("cpu", [16, 16, 16, 16, 16, 5])):  # a partial last batch
        lr = 0.1 * (0.9**i)
        step(images, labels, lr)
        for group in theirs_opt.param_groups:
            group["lr"] = lr
        logits = theirs(images)
        loss = F.cross_entropy(logits, labels)
        theirs_opt.zero_grad(set_to_none=True)
        loss.backward()
        theirs_opt.step()
        loss_sum += float(loss.detach()) * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # p - lr*g vs p + (-lr)*g: rounding only
    assert float(step.loss_sum) == pytest.approx(loss_sum, rel=1e-6) and int(step.correct) == correct
    assert step.eager_steps == 5 and not step.captured  # CPU: never captured; partial batches not counted
    assert ours_opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**5)
    if sgd["momentum"]:  # torch's own state entries: a checkpoint of one loads into the other
        theirs_opt.load_state_dict(ours_opt.state_dict())
        assert all(ours_opt.state[p]["momentum_buffer"] is step.buffers[i] for i, p in enumerate(step.params))


def test_cuda_graphs_without_a_gpu_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="cuda_graphs: needs a CUDA device, but device is 'cpu'"):
        TrainingConfig(device="cpu", cuda_graphs=True)
    with pytest.raises(ValueError, match="cuda_graphs: must be true or false"):
        TrainingConfig(cuda_graphs="yes")


@pytest.fixture
def deterministic() -> Iterator[None]:
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.deterministic = before[1]


@CUDA
def test_replaying_the_graph_computes_what_the_eager_steps_compute(deterministic: None) -> None:
    sgd = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
    batches = _batches("cuda", [32] * 8 + [7])
    states = []
    for capture in (True, False):
        model = seeded_model(CELL, 5, C=8, N=2, num_classes=10).cuda()
        step = _step(model, torch.optim.SGD(model.parameters(), lr=0.1, **sgd), capture, 32, **sgd)
        for i, (images, labels) in enumerate(batches):
            step(images, labels, 0.1 / (1 + i))
        torch.cuda.synchronize()
        assert step.captured == capture and step.eager_steps == (WARMUP_STEPS if capture else 8)
        states.append((model.state_dict(), float(step.loss_sum), int(step.correct)))
    (graphed, graphed_loss, graphed_correct), (eager, eager_loss, eager_correct) = states
    for name in eager:
        assert torch.equal(graphed[name], eager[name]), name
    assert (graphed_loss, graphed_correct) == (eager_loss, eager_correct)


@CUDA
@pytest.mark.parametrize("amp", [False, True])
def test_a_candidate_trained_with_cuda_graphs_learns_and_repeats_bit_for_bit(
    amp: bool, deterministic: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    captures = []
    capture = GraphedSGDStep._capture
    monkeypatch.setattr(GraphedSGDStep, "_capture", lambda self, *a: captures.append(1) or capture(self, *a))
    fields = {"C": 8, "N": 1, "digits_size": 16, "batch_size": 64, "epochs": 2, "device": "cuda"}
    config = TrainingConfig(**fields, amp=amp, cuda_graphs=True, deterministic=True)
    (first,) = TrainingEvaluator(config).evaluate([Candidate(0, CELL, seed=2)])
    (again,) = TrainingEvaluator(config).evaluate([Candidate(1, CELL, seed=2)])
    assert first.ok and again.ok, (first.error, again.error)
    assert captures == [1, 1]  # one capture per candidate training
    same = ("valid_accuracy", "valid_loss", "train_accuracy", "train_loss")
    assert {k: first.metrics[k] for k in same} == {k: again.metrics[k] for k in same}
    assert first.metrics["valid_accuracy"] > 30  # it learns: 10 digit classes, chance is 10 %


@CUDA
def test_a_graphed_training_resumed_from_its_checkpoint_equals_the_uninterrupted_one(
    tmp_path, deterministic: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {"C": 8, "N": 1, "digits_size": 16, "batch_size": 64, "epochs": 3, "device": "cuda"}
    config = TrainingConfig(
        **fields, cuda_graphs=True, deterministic=True, checkpoint_epochs=1, state_dir=str(tmp_path)
    )
    (whole,) = TrainingEvaluator(config).evaluate([Candidate(0, CELL, seed=2)])
    save = training._TrainingRun._save

    def save_then_die(self, seconds: float) -> None:
        save(self, seconds)
        raise RuntimeError("actor lost")

    monkeypatch.setattr(training._TrainingRun, "_save", save_then_die)
    (lost,) = TrainingEvaluator(config).evaluate([Candidate(1, CELL, seed=2)])
    monkeypatch.undo()
    (resumed,) = TrainingEvaluator(config).evaluate([Candidate(1, CELL, seed=2)])
    assert not lost.ok and "actor lost" in lost.error and whole.ok and resumed.ok
    assert whole.metrics["resumed_epoch"] == 0 and resumed.metrics["resumed_epoch"] == 1
    same = ("valid_accuracy", "valid_loss", "train_accuracy", "train_loss")
    assert {k: resumed.metrics[k] for k in same} == {k: whole.metrics[k] for k in same}
    assert not list(tmp_path.iterdir())  # the finished candidates' states are deleted


@pytest.mark.parametrize(
    ("setting", "named"),
    [("cuda_graphs=true", "cuda_graphs: true"), ("amp=true", "amp: true"), ("device=cuda", "device: 'cuda'")],
)
def test_gpu_settings_for_actors_without_a_gpu_are_refused_up_front(setting: str, named: str) -> None:
    """A new user's `natsray validate ... --set evaluator.cuda_graphs=true` (device auto) printed OK, and the
    run then failed every candidate in its actors: Ray gives an actor that asks for no GPU none."""
    from pathlib import Path

    from natsray.config import ConfigError, load_config

    quickstart = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
    sets = ["evaluator.device=auto", f"evaluator.{setting}"]
    with pytest.raises(ConfigError) as refused:
        load_config(quickstart, sets)
    field = named.split(":")[0]
    assert str(refused.value) == (
        f"{quickstart}: evaluator.{field}: {named.split(': ')[1]} needs a GPU in each actor, but "
        "resources.gpus_per_actor is 0 (Ray gives an actor that asks for no GPU none): set "
        "resources.gpus_per_actor, e.g. 1 or 0.25"
    )
    assert load_config(quickstart, [*sets, "resources.gpus_per_actor=0.5"]).resources.gpus_per_actor == 0.5
