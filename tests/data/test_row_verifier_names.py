"""A ``verifier`` column names a registered verifier, never code: loading a file (or hub rows) whose row
names ``module:function`` or a ``.py`` file is a ``DataError`` naming file, row and value, raised before
anything is imported or run; the caller's own ``verifier=`` (the command line's ``--data.verifier``) may
still be a path.
"""

import csv
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from r1zero.data import DataError, load_problems
from r1zero.data.loaders import rows_to_problems
from r1zero.verifiers import available_verifiers

from .conftest import write_jsonl


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """The report's two rows (``timeit:timeit`` would create ``marker``, ``shutil:rmtree`` would delete
    ``victim/keep.txt``) and a row naming a module whose import creates ``imported``."""
    marker, victim, imported = tmp_path / "marker", tmp_path / "victim", tmp_path / "imported"
    victim.mkdir()
    (victim / "keep.txt").write_text("still here")
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "r1zero_hostile_data_module.py").write_text(
        f"import pathlib\npathlib.Path({str(imported)!r}).touch()\ndef verify(r, g, **m):\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    rows = [
        {"question": f"open({str(marker)!r}, 'w').close()", "answer": "pass", "verifier": "timeit:timeit"},
        {"question": str(victim), "answer": "1", "verifier": "shutil:rmtree"},
    ]

    def untouched() -> bool:
        return (
            not marker.exists()
            and (victim / "keep.txt").read_text() == "still here"
            and not imported.exists()
            and "r1zero_hostile_data_module" not in sys.modules
        )

    return rows, untouched


def test_the_two_row_jsonl_is_refused_naming_file_row_and_value(tmp_path, hostile):
    rows, untouched = hostile
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError) as info:
        load_problems(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"{path}, row 1, column 'verifier': 'timeit:timeit' is not a registered verifier"
    )
    assert ", ".join(available_verifiers()) in message and "--data.verifier path.py" in message
    assert untouched()


@pytest.mark.parametrize(
    "value", ["shutil:rmtree", "r1zero_hostile_data_module:verify", "evil.py", "evil.py:verify", "nope"]
)
def test_any_unregistered_value_is_refused_in_every_format(tmp_path, hostile, value):
    _, untouched = hostile
    rows = [
        {"question": "1+1", "answer": "2", "verifier": None},  # no verifier of its own: the default
        {"question": "2+2", "answer": "4", "verifier": value},
    ]
    (tmp_path / "evil.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n")
    write_jsonl(tmp_path / "a.jsonl", rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    with (tmp_path / "a.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["question", "answer", "verifier"])
        writer.writeheader()
        writer.writerows(rows)
    for suffix in ("jsonl", "parquet", "csv"):
        with pytest.raises(DataError, match=r"row 2, column 'verifier': .* is not a registered verifier"):
            load_problems(tmp_path / f"a.{suffix}", verifier="integer")
    assert untouched()


def test_hub_rows_go_through_the_same_check(hostile):
    rows, untouched = hostile
    with pytest.raises(DataError, match=r"hf:x/y\[test\], row 2, column 'verifier': 'shutil:rmtree'"):
        rows_to_problems([(1, {"question": "q", "answer": "1"}), (2, rows[1])], source="hf:x/y[test]")
    assert untouched()


def test_registered_names_in_rows_and_a_trusted_default_path_still_load(tmp_path):
    plugin = tmp_path / "my_verifier.py"
    plugin.write_text("def verify(response, gold, **meta):\n    return None\n")
    rows = [
        {"question": "1+1", "answer": "2", "verifier": "integer"},
        {"question": "q", "answer": "22", "verifier": "countdown"},
        {"question": "x", "answer": "1"},
    ]
    problems = load_problems(write_jsonl(tmp_path / "ok.jsonl", rows), verifier=str(plugin))
    assert [p.verifier for p in problems] == ["integer", "countdown", str(plugin)]


def test_training_data_from_a_file_is_refused_before_any_verifier_runs(tmp_path, hostile):
    from r1zero.train import build
    from r1zero.train.config import DataConfig, TrainConfig

    rows, untouched = hostile
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError, match="'timeit:timeit' is not a registered verifier"):
        build.load_problems_for(TrainConfig(data=DataConfig(source=str(path))))
    assert untouched()


def test_eval_benchmark_rows_never_choose_their_verifier(tmp_path, hostile):
    """A benchmark file's rows are scored by the benchmark's verifier; a row's ``verifier`` is only meta."""
    from r1zero.eval.benchmarks import get_benchmark, load_benchmark

    rows, untouched = hostile
    write_jsonl(tmp_path / "gsm8k_test.jsonl", [{"problem": r["question"], **r} for r in rows])
    problems = load_benchmark(get_benchmark("gsm8k"), data_dir=tmp_path)
    assert {p.verifier for p in problems} == {"math"}
    assert untouched()
