"""Every bad path or file the user names is one line on stderr with exit code 2, naming it and what was
expected: a directory that is not a run, an ``--out`` that cannot be written, a table that is a directory
or a NATS-Bench file, an archive that is one record file."""

from __future__ import annotations

import bz2
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import toy_evaluator  # noqa: F401 - registers evaluator.type: toy
import yaml

from natsray.cli import main


def _read_only(root: Path) -> Path:
    """A directory nobody may create files in (as root, which ignores permission bits: under /sys)."""
    if os.geteuid() == 0:
        return Path("/sys/natsray-read-only")
    folder = root / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    config = root / "toy.yaml"
    toy = {
        "seed": 0,
        "strategy": {"name": "random"},
        "evaluator": {"type": "toy"},
        "budget": {"evaluations": 6},
        "engine": {"in_process": True},
        "output": {"progress": False},
    }
    config.write_text(yaml.safe_dump(toy))
    table = root / "table.yaml"
    table.write_text(
        yaml.safe_dump(
            {**toy, "evaluator": {"type": "table", "table": str(root), "objective": ["valid_accuracy@12"]}}
        )
    )
    run = root / "run"
    assert main(["run", str(config), "--out", str(run), "--no-progress"]) == 0
    (root / "not-a-run").mkdir()
    (root / "sweep").mkdir()
    (root / "sweep" / "sweep.yaml").write_text("version: 1\n")  # what report and resume look for
    (root / "a-file").write_text("x")
    record = root / "000005.pickle.pbz2"  # what a NATS-Bench archive holds per cell
    record.write_bytes(bz2.compress(pickle.dumps({"12": {}, "200": {}})))
    return {
        "root": root,
        "config": config,
        "table_config": table,
        "run": run,
        "not_run": root / "not-a-run",
        "sweep": root / "sweep",
        "file": root / "a-file",
        "record": record,
        "read_only": _read_only(root),
    }


CASES: dict[str, tuple[Callable[[dict[str, Path]], list[str]], Callable[[dict[str, Path]], str]]] = {
    "report on a directory that is neither a run nor a sweep": (
        lambda f: ["report", str(f["not_run"])],
        lambda f: (
            f"{f['not_run']}: not a run or sweep directory "
            "(no evaluations.jsonl, summary.json, config.yaml or sweep.yaml)\n"
        ),
    ),
    "report of several runs, one not a run": (  # several: runs only
        lambda f: ["report", str(f["run"]), str(f["not_run"])],
        lambda f: (
            f"{f['not_run']}: not a run directory (no evaluations.jsonl, summary.json or config.yaml)\n"
        ),
    ),
    "report of a sweep among runs": (
        lambda f: ["report", str(f["run"]), str(f["sweep"])],
        lambda f: f"{f['sweep']}: a sweep directory is reported alone: natsray report {f['sweep']}\n",
    ),
    "resume on a directory that is neither a run nor a sweep": (
        lambda f: ["resume", str(f["not_run"])],
        lambda f: f"{f['not_run']}: not a run or sweep directory (no config.yaml or sweep.yaml)\n",
    ),
    "report --out a file": (
        lambda f: ["report", str(f["run"]), "--out", str(f["file"])],
        lambda f: f"--out {f['file']}: is a file, expected a directory",
    ),
    "report --out read-only": (
        lambda f: ["report", str(f["run"]), "--out", str(f["read_only"] / "rep")],
        lambda f: f"--out {f['read_only'] / 'rep'}: ",
    ),
    "run --out under a file": (
        lambda f: ["run", str(f["config"]), "--out", str(f["file"] / "run")],
        lambda f: f"--out {f['file'] / 'run'}: {f['file']} is a file, expected a directory",
    ),
    "run --out read-only": (
        lambda f: ["run", str(f["config"]), "--out", str(f["read_only"] / "run")],
        lambda f: f"--out {f['read_only'] / 'run'}: ",
    ),
    "sweep --out a file": (
        lambda f: ["run", str(f["config"]), "--seeds", "0-1", "--out", str(f["file"])],
        lambda f: f"--out {f['file']}: is a file, expected a directory",
    ),
    "sweep --out read-only": (
        lambda f: ["run", str(f["config"]), "--seeds", "0-1", "--out", str(f["read_only"] / "sweep")],
        lambda f: f"--out {f['read_only'] / 'sweep'}: ",
    ),
    "export-table --out a directory": (
        lambda f: ["export-table", "--archive", str(f["root"]), "--out", str(f["not_run"])],
        lambda f: f"--out {f['not_run']}: is a directory, expected a file to write",
    ),
    "export-table --out read-only": (
        lambda f: ["export-table", "--archive", str(f["root"]), "--out", str(f["read_only"] / "t.npz")],
        lambda f: f"--out {f['read_only'] / 't.npz'}: ",
    ),
    "--set evaluator.table=a directory": (
        lambda f: [
            "run",
            str(f["table_config"]),
            "--out",
            str(f["root"] / "t"),
            "--set",
            f"evaluator.table={f['not_run']}",
        ],
        lambda f: f"{f['not_run']} is a directory; expected a table (.npz)",
    ),
    "--table a NATS-Bench record file": (
        lambda f: ["show", "5", "--table", str(f["record"])],
        lambda f: f"--table: {f['record']} is not a natsray table (.npz): not a zip file",
    ),
    "--archive a record file": (
        lambda f: ["show", "5", "--archive", str(f["record"])],
        lambda f: f"--archive: {f['record']} is a file; expected",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_path_is_one_line_exit_2(
    case: str, files: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    argv, expected = CASES[case]
    capsys.readouterr()
    code = main(argv(files))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert expected(files) in err, err
