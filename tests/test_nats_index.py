"""NatsIndex: the official order from the real meta file, small archives, one-line errors."""

from __future__ import annotations

import bz2
import pickle
from pathlib import Path

import numpy as np
import pytest

from natsray.search_space import NUM_ARCHS, Arch, NatsIndex, all_archs

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "nats-tss" / "real-records"
INDEX_11 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"


def _write_meta(directory: Path, payload: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with bz2.open(directory / "meta.pickle.pbz2", "wb") as f:
        pickle.dump(payload, f)
    return directory


@pytest.fixture(scope="module")
def real() -> NatsIndex:
    if not (ARCHIVE / "meta.pickle.pbz2").is_file():
        pytest.skip(f"NATS meta file not found under {ARCHIVE}")
    return NatsIndex.from_archive(ARCHIVE)


def test_real_meta_is_a_bijection_in_official_order(real: NatsIndex) -> None:
    with bz2.open(ARCHIVE / "meta.pickle.pbz2", "rb") as f:
        meta_archs = pickle.load(f)["meta_archs"]
    assert len(real) == NUM_ARCHS
    for index, text in enumerate(meta_archs):
        assert str(real.arch_at(index)) == text
        assert real.index_of(Arch.from_str(text)) == index
    assert {real.index_of(arch) for arch in all_archs()} == set(range(NUM_ARCHS))


def test_real_records_agree(real: NatsIndex) -> None:
    for index in (0, 11, 284):
        with bz2.open(ARCHIVE / f"{index:06d}.pickle.pbz2", "rb") as f:
            record = pickle.load(f)
        assert record["200"]["arch_index"] == index
        assert real.index_of(Arch.from_str(record["200"]["arch_str"])) == index
    assert str(real.arch_at(11)) == INDEX_11
    assert real.arch_at(np.int64(11)) == real.arch_at(11)
    assert NatsIndex.from_archive(ARCHIVE / "meta.pickle.pbz2").arch_at(11) == real.arch_at(11)


def test_small_meta_written_here(tmp_path: Path) -> None:
    archs = [Arch.from_code(c) for c in (42, 7, 15624)]
    index = NatsIndex.from_archive(_write_meta(tmp_path, {"meta_archs": [str(a) for a in archs]}))
    assert len(index) == 3
    assert [index.index_of(a) for a in archs] == [0, 1, 2]
    assert index.arch_at(2) == archs[2]
    assert Arch.from_code(0) not in index
    with pytest.raises(ValueError, match=r"is not in this NATS index \(3 archs\)"):
        index.index_of(Arch.from_code(0))
    for bad in (3, -1, 1.0, True, "1"):
        with pytest.raises(ValueError, match=r"NATS index must be an int in 0\.\.2"):
            index.arch_at(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"other": 1}, "no non-empty 'meta_archs' list"),
        ({"meta_archs": []}, "no non-empty 'meta_archs' list"),
        (["|none~0|"], "no non-empty 'meta_archs' list"),
        ({"meta_archs": ["|none~0|+|none~0|none~1|"]}, "entry 0 is not a NATS arch string"),
        ({"meta_archs": [str(Arch.from_code(3)), str(Arch.from_code(3))]}, "index 1 repeats index 0"),
    ],
)
def test_malformed_meta(tmp_path: Path, payload: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        NatsIndex.from_archive(_write_meta(tmp_path / "archive", payload))
    assert "\n" not in str(info.value) and "meta.pickle.pbz2" in str(info.value)


def test_missing_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        NatsIndex.from_archive(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"has no meta\.pickle\.pbz2"):
        NatsIndex.from_archive(tmp_path)
    (tmp_path / "meta.pickle.pbz2").write_bytes(b"plain bytes")
    with pytest.raises(ValueError, match="is not a bz2-compressed pickle") as info:
        NatsIndex.from_archive(tmp_path)
    assert "\n" not in str(info.value)
