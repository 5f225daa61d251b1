"""Training at scale: one dataset copy per node, the run's top-k weights, checkpointed training."""

from __future__ import annotations

import pytest
import ray
from toy_evaluator import TESTS_DIR

from natsray.evaluators.training import TrainingConfig, TrainingEvaluator

TINY = {"C": 4, "N": 1, "digits_size": 8, "batch_size": 64, "augment": True, "threads": 1, "epochs": 1}


@pytest.fixture(scope="module")
def address():
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": TESTS_DIR}},
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


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
