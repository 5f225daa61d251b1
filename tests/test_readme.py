"""README says what the commands really print (issue 11, item 5): the quickstart's sample output has the
format `natsray run` prints, the quickstart config is the reproducible one, and the `pip check` note holds."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import toy_evaluator  # noqa: F401  (registers evaluator.type: toy)

from natsray.cli import main

ROOT = Path(__file__).resolve().parents[1]
# what each line of the summary `natsray run` prints looks like
LINE = {
    "run dir": r"\S+",
    "best arch": r"(\|[a-z_0-9x]+~\d)+\|(\+(\|[a-z_0-9x]+~\d)+\|)+",
    "objectives": r"\w+=[-\d.e+]+(, \w+=[-\d.e+]+)*",
    "metrics": r"[\w@]+=[-\d.e+]+(, [\w@]+=[-\d.e+]+)*",
    "evaluations": r"\d+ \(\d+ failed, \d+ cached\); stopped: .+",
    "files": r"[\w.]+(, [\w.]+)*",
}


def readme_sample() -> list[str]:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"`natsray run configs/quickstart.yaml` starts.*?```\n(.*?)```", text, re.S)
    assert match, "README lost the quickstart sample output"
    return match.group(1).splitlines()


def check_format(lines: list[str]) -> dict[str, str]:
    fields = {}
    for line in lines:
        key, value = line[:14].strip(), line[14:]
        assert key in LINE and re.fullmatch(LINE[key], value), line
        fields[key] = value
    assert list(fields) == list(LINE)
    return fields


def test_readme_sample_has_the_format_natsray_prints(tmp_path: Path, capsys) -> None:
    sample = check_format(readme_sample())
    quickstart = yaml.safe_load((ROOT / "configs/quickstart.yaml").read_text())
    assert sample["run dir"] == quickstart["output"]["dir"]
    assert sample["evaluations"].startswith(f"{quickstart['budget']['evaluations']} (")
    names = [item.split("=")[0] for item in sample["metrics"].split(", ")]
    assert set(quickstart["evaluator"]["report"]) <= set(names)
    # the same lines from the real command, on a toy run
    config = tmp_path / "toy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "seed": 0,
                "strategy": {"name": "regularized_evolution", "population": 4, "sample_size": 2},
                "evaluator": {"type": "toy"},
                "budget": {"evaluations": 8},
                "engine": {"mode": "ordered", "in_process": True},
                "output": {"dir": str(tmp_path / "run")},
            }
        )
    )
    assert main(["run", str(config), "--no-progress"]) == 0
    printed = check_format(
        [line for line in capsys.readouterr().out.splitlines() if line[:14].strip() in LINE]
    )
    assert printed["files"] == sample["files"]  # the same files as README lists


def test_quickstart_is_the_reproducible_engine() -> None:
    quickstart = yaml.safe_load((ROOT / "configs/quickstart.yaml").read_text())
    assert quickstart["engine"]["mode"] == "ordered"
    assert quickstart["resources"]["cpus_per_actor"] == 1  # one torch thread per actor


@pytest.mark.ray
@pytest.mark.slow
def test_a_shortened_quickstart_repeats_itself(tmp_path: Path, capsys) -> None:
    runs = []
    for name in ("a", "b"):
        argv = ["run", str(ROOT / "configs/quickstart.yaml"), "--out", str(tmp_path / name), "--no-progress"]
        assert main([*argv, "--set", "budget.evaluations=12", "--set", "evaluator.epochs=1"]) == 0
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        journal = [
            json.loads(line) for line in (tmp_path / name / "evaluations.jsonl").read_text().splitlines()
        ]
        trajectory = sorted((r["candidate_id"], r["arch"], json.dumps(r.get("objectives"))) for r in journal)
        runs.append((summary["best_arch"], summary["best_objectives"], summary["cached"], trajectory))
    assert runs[0] == runs[1]


def test_pip_checks_fvcore_note_holds() -> None:
    """README: xautodl declares fvcore but never imports it, and natsray's use of xautodl works without it."""
    xautodl = pytest.importorskip("xautodl")
    package = Path(xautodl.__file__).parent
    imports = [
        path
        for path in package.rglob("*.py")
        if re.search(r"^\s*(import fvcore|from fvcore)", path.read_text(errors="ignore"), re.M)
    ]
    assert imports == []
    from natsray.models import count_params_flops
    from natsray.search_space import Arch

    assert count_params_flops(Arch.from_code(5), C=4, N=1)[0] > 0
    assert "fvcore" not in sys.modules


def readme_two_minute_version() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"The two-minute version:.*?```python\n(.*?)```", text, re.S)
    assert match, "README lost the two-minute version of the Python API"
    return match.group(1)


@pytest.mark.ray
@pytest.mark.slow
def test_the_two_minute_version_runs_on_ray_actors(tmp_path: Path) -> None:
    """README's Python snippet, as a user runs it: a fresh interpreter in an empty directory."""
    import subprocess

    from ray_head import clean_env

    script = readme_two_minute_version() + (
        "\nimport ray, json\n"
        "assert not ray.is_initialized()  # natsray started Ray for the run and stopped it\n"
        "frame = run.evaluations\n"
        "print(json.dumps([run.best.objectives, float(frame['objective.score'].max()), len(frame), "
        "int(frame['worker'].nunique())]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    best, top, rows, workers = json.loads(done.stdout.strip().splitlines()[-1])
    assert rows == 60 and workers == 2  # the default: two Ray actors
    assert best == {"score": top}  # the best cell is the best evaluation's
    assert (tmp_path / "runs" / "two-minutes" / "config.yaml").is_file()


def test_readme_and_config_md_list_every_shipped_config() -> None:
    """Every file of configs/ (sweeps/ included) is named in README's list and docs/config.md's table."""
    root = Path(__file__).resolve().parents[1]
    shipped = sorted(
        p.relative_to(root / "configs").with_suffix("").as_posix() for p in (root / "configs").rglob("*.yaml")
    )
    readme = (root / "README.md").read_text()
    listed = readme[readme.index("Shipped experiments (`configs/`)") :].split("\n\n")[0]
    assert [name for name in shipped if f"`{name}`" not in listed] == []
    config_md = (root / "docs/config.md").read_text()
    table = config_md[config_md.index("## Shipped experiments") :].split("\n## ")[0]
    assert [name for name in shipped if f"`{name}.yaml`" not in table] == []


def test_quickstart_header_states_the_accuracy_readme_shows() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    shown = re.search(r"^objectives\s+valid_accuracy=([\d.]+)$", readme, re.M).group(1)
    header = (root / "configs/quickstart.yaml").read_text().split("\nseed:")[0]
    assert f"valid accuracy {shown} %" in header
