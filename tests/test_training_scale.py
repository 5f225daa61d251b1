"""Training at scale: one dataset copy per node, the run's top-k weights, checkpointed training."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray
import torch
from toy_evaluator import local_ray_session, make_config

from natsray.compat import NatsbenchTssSearchSpace
from natsray.config import BudgetConfig
from natsray.engine.checkpoint import read_journal
from natsray.engine.runner import run_experiment
from natsray.evaluators.training import TrainingConfig, TrainingEvaluator
from natsray.models import build_model, load_weights
from natsray.records import Candidate
from natsray.search_space import Arch
from natsray.strategies.random_search import RandomSearchConfig

TINY = {"C": 4, "N": 1, "digits_size": 8, "batch_size": 64, "augment": True, "threads": 1, "epochs": 1}


@pytest.fixture(scope="module")
def address():
    with local_ray_session() as gcs_address:
        yield gcs_address


def test_evaluators_built_from_one_shared_dataset_view_the_same_memory() -> None:
    config = TrainingConfig(**TINY, train_subset=300)
    shared = TrainingEvaluator.prepare_shared(config)
    first, second = TrainingEvaluator(config, shared), TrainingEvaluator(config, shared)
    first.setup()
    second.setup()
    assert len(first.data.train) == 300
    for split in ("train", "valid", "test"):
        a, b = getattr(first.data, split), getattr(second.data, split)
        assert a.images.data_ptr() == b.images.data_ptr() == shared[split][0].ctypes.data


@ray.remote(num_cpus=0.5)
class _Probe:
    def __init__(self, config: TrainingConfig, shared: object) -> None:
        self.evaluator = TrainingEvaluator(config, shared)
        self.evaluator.setup()

    def train_images(self) -> tuple[bool, bool, int]:
        """(the evaluator's tensor views the shared array, that array is writable, images)."""
        array = self.evaluator.shared["train"][0]
        tensor = self.evaluator.data.train.images
        return tensor.data_ptr() == array.ctypes.data, array.flags.writeable, len(tensor)


@pytest.mark.ray
def test_actors_map_the_object_store_copy_instead_of_reading_their_own(address) -> None:
    config = TrainingConfig(**TINY)
    ref = ray.put(TrainingEvaluator.prepare_shared(config))
    probes = [_Probe.remote(config, ref) for _ in range(2)]
    # A read-only array is a zero-copy view of the node's one copy in the object store.
    assert ray.get([p.train_images.remote() for p in probes]) == [(True, False, 1000)] * 2


def _top(run_dir: Path, k: int) -> list[int]:
    """Ids of the journal's ``k`` best ok results by valid accuracy, earlier id first on ties."""
    ok = [r for r in read_journal(run_dir / "evaluations.jsonl") if r["status"] == "ok"]
    ranked = sorted(ok, key=lambda r: (-r["objectives"]["valid_accuracy"], r["candidate_id"]))
    return [r["candidate_id"] for r in ranked[:k]]


def _weights(run_dir: Path) -> set[str]:
    return {p.name for p in (run_dir / "weights").iterdir()}


@pytest.mark.ray
def test_save_top_k_keeps_the_top_of_the_whole_run_across_actors(tmp_path, address) -> None:
    config = make_config(
        strategy=RandomSearchConfig(),
        evaluator=TrainingConfig(**TINY, train_subset=128, save_top_k=3),
        budget=BudgetConfig(evaluations=10),
        actors=2,
    )
    run_experiment(config, tmp_path)
    records = read_journal(tmp_path / "evaluations.jsonl")
    assert len({r["worker"] for r in records}) == 2  # both actors trained (and wrote) networks
    top = _top(tmp_path, 3)
    assert _weights(tmp_path) == {f"{i}.pt" for i in top} | {"top_k.json"}  # 3 of the run, not 3 per actor
    index = json.loads((tmp_path / "weights" / "top_k.json").read_text())
    assert [entry["candidate_id"] for entry in index["top"]] == top
    assert (
        not any((tmp_path / "training_state").glob("*")) if (tmp_path / "training_state").exists() else True
    )


@pytest.mark.ray
def test_save_top_k_survives_resume_and_the_best_weights_load_with_nats_size(tmp_path, address) -> None:
    nats = {**TINY, "C": 16, "N": 5, "train_subset": 64}
    evaluator = TrainingConfig(**nats, save_top_k=2)

    def config(evaluations: int):
        return make_config(
            strategy=RandomSearchConfig(),
            evaluator=evaluator,
            budget=BudgetConfig(evaluations=evaluations),
            actors=1,
        )

    run_experiment(config(4), tmp_path)
    assert _weights(tmp_path) == {f"{i}.pt" for i in _top(tmp_path, 2)} | {"top_k.json"}
    torch.save({}, tmp_path / "weights" / "99.pt")  # a stray file from an interrupted evaluation
    run_experiment(config(8), tmp_path, resume=True)
    top = _top(tmp_path, 2)
    assert len(read_journal(tmp_path / "evaluations.jsonl")) == 8
    assert _weights(tmp_path) == {f"{i}.pt" for i in top} | {"top_k.json"}
    best = json.loads((tmp_path / "weights" / "top_k.json").read_text())["top"][0]
    assert best["candidate_id"] == top[0] and (best["file"], best.get("valid_accuracy") is not None) == (
        f"{top[0]}.pt",
        True,
    )
    path = tmp_path / "weights" / best["file"]
    space = NatsbenchTssSearchSpace(base_dataset="cifar10")  # 10 classes, NATS size C=16, N=5
    model = space._model(Arch.from_str(best["arch"]))
    space.load_model_weights(model, path)
    plain = load_weights(build_model(Arch.from_str(best["arch"]), C=16, N=5, num_classes=10), path)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, model.arch.state_dict()[key])


def _kill_the_actor_after_its_first_state(state_dir: Path, killed: list[int]) -> None:
    """Watch for the first saved training state, then SIGKILL the actor that wrote it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for path in state_dir.glob("*.pt") if state_dir.exists() else ():
            try:
                worker = torch.load(path, weights_only=True)["worker"]
            except Exception:
                continue
            pid = int(worker.rsplit(":", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.005)


@pytest.mark.ray
def test_a_killed_actor_resumes_its_candidate_from_the_saved_state_bit_equal(tmp_path, address) -> None:
    fields = {**TINY, "C": 8, "digits_size": 16, "train_subset": 512, "epochs": 8}
    killed: list[int] = []
    watcher = threading.Thread(
        target=_kill_the_actor_after_its_first_state, args=(tmp_path / "killed" / "training_state", killed)
    )
    watcher.start()
    config = make_config(
        strategy=RandomSearchConfig(),
        evaluator=TrainingConfig(**fields, checkpoint_epochs=2),
        budget=BudgetConfig(evaluations=1),
        actors=1,
    )
    run_experiment(config, tmp_path / "killed")
    watcher.join()
    assert killed, "the actor was never killed"
    (resumed,) = read_journal(tmp_path / "killed" / "evaluations.jsonl")
    candidate = Candidate(0, Arch.from_str(resumed["arch"]), seed=resumed["seed"])
    (plain,) = TrainingEvaluator(TrainingConfig(**fields)).evaluate([candidate])  # uninterrupted, no states
    assert resumed["status"] == "ok" and resumed["attempts"] == 1
    assert resumed["metrics"]["resumed_epoch"] in (2, 4, 6)  # continued, not restarted
    assert resumed["worker"] != f"{resumed['worker'].rsplit(':', 1)[0]}:{killed[0]}"
    same = ("valid_accuracy", "valid_loss", "train_accuracy", "train_loss")
    assert {k: resumed["metrics"][k] for k in same} == {k: plain.metrics[k] for k in same}
    assert not list((tmp_path / "killed" / "training_state").glob("*.pt"))  # deleted when done
