"""A verifier named by a data row is a registered name, never code: ``r1zero verify --file`` refuses a row
that names ``module:function`` or a ``.py`` file before importing or running anything; the command line's
``--verifier`` still takes a path.
"""

import json
import sys

import pytest

from r1zero.verifiers import available_verifiers, get_verifier
from r1zero.verifiers.cli import Row, main, score_rows

GOOD = "<think>2+2=4</think> <answer>4</answer>"


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """Rows that run ``timeit:timeit`` (it would create ``marker``) and ``shutil:rmtree`` (it would delete
    ``victim/keep.txt``), one naming a module whose import creates ``imported``, one naming a .py file
    whose import does the same."""
    marker, victim, imported = tmp_path / "marker", tmp_path / "victim", tmp_path / "imported"
    victim.mkdir()
    (victim / "keep.txt").write_text("still here")
    touch = f"import pathlib\npathlib.Path({str(imported)!r}).touch()\ndef verify(r, g, **m):\n    return 1\n"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "r1zero_hostile_row_module.py").write_text(touch)
    (tmp_path / "hostile_row_file.py").write_text(touch)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    rows = {
        "timeit": {
            "response": f"open({str(marker)!r}, 'w').close()",
            "gold": "pass",
            "verifier": "timeit:timeit",
            "meta": {"number": 1},
            "expected": False,
        },
        "rmtree": {"response": str(victim), "gold": "", "verifier": "shutil:rmtree", "expected": False},
        "module": {"response": "x", "gold": "1", "verifier": "r1zero_hostile_row_module:verify"},
        "file": {"response": "x", "gold": "1", "verifier": str(tmp_path / "hostile_row_file.py")},
    }

    def untouched() -> bool:
        return (
            not marker.exists()
            and (victim / "keep.txt").read_text() == "still here"
            and not imported.exists()
            and "r1zero_hostile_row_module" not in sys.modules
        )

    return rows, untouched


def test_the_two_row_file_of_the_report_is_refused_and_nothing_runs(tmp_path, capsys, hostile):
    rows, untouched = hostile
    path = write_rows(tmp_path / "rows.jsonl", [rows["timeit"], rows["rmtree"]])
    assert main(["--file", str(path)]) == 2
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "rows.jsonl:1" in line)
    assert "'timeit:timeit'" in line and "not a registered verifier" in line
    assert ", ".join(available_verifiers()) in line and "--verifier path.py" in line
    assert untouched()


@pytest.mark.parametrize("kind", ["timeit", "rmtree", "module", "file"])
def test_each_hostile_row_is_refused_with_its_line(tmp_path, capsys, hostile, kind):
    rows, untouched = hostile
    path = write_rows(tmp_path / "rows.jsonl", [{"response": GOOD, "gold": "4"}, rows[kind]])
    assert main(["--file", str(path), "--verifier", "integer", "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rows.jsonl:2: field 'verifier'" in err
    assert json.dumps(rows[kind]["verifier"]) in err or repr(rows[kind]["verifier"]) in err
    assert untouched()


def test_score_rows_refuses_a_row_verifier_that_is_not_registered(hostile):
    """The worker pool is reached from rows only through ``score_rows``: it checks each row's name too."""
    rows, untouched = hostile
    bad = Row(rows["timeit"]["response"], "pass", verifier="timeit:timeit", meta={"number": 1})
    with pytest.raises(ValueError, match="'timeit:timeit' is not a registered verifier"):
        score_rows([Row(GOOD, "4"), bad], "integer", workers=1, timeout=5.0, progress=False)
    assert untouched()


def test_registered_names_in_rows_still_work(tmp_path, capsys):
    rows = [
        {"response": GOOD, "gold": "4", "expected": True, "verifier": "integer"},
        {"response": "<answer>3*5+7</answer>", "gold": "22", "expected": True, "verifier": "countdown",
         "meta": {"numbers": [3, 5, 7]}},
        {"response": GOOD, "gold": "4", "expected": True, "verifier": "math"},
    ]  # fmt: skip
    path = write_rows(tmp_path / "rows.jsonl", rows)
    assert main(["--file", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["accuracy"] == 1.0


def test_a_path_on_the_command_line_still_works(tmp_path, capsys):
    plugin = tmp_path / "always_right.py"
    plugin.write_text(
        "from r1zero.verifiers import Verdict, register\n"
        "@register('r1zero_test_always_right')\n"
        "def verify(response, gold, **meta):\n"
        "    return Verdict(1.0, True, True, 'correct')\n"
    )
    rows = [
        {"response": "anything", "gold": "1", "expected": True},
        # a name the command line's file registered is a registered name
        {"response": "anything", "gold": "1", "expected": True, "verifier": "r1zero_test_always_right"},
    ]
    path = write_rows(tmp_path / "rows.jsonl", rows)
    assert main(["--file", str(path), "--verifier", str(plugin), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["accuracy"] == 1.0
    argv = ["--verifier", f"{plugin}:verify", "--gold", "1", "--response", "x"]
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["correct"] is True


@pytest.mark.parametrize("spec", ["timeit:timeit", "os.path:join", "x.py", "", None, 3, "nope"])
def test_registered_verifier_accepts_only_registered_names(spec):
    from r1zero.verifiers.base import registered_verifier

    with pytest.raises(ValueError, match="not a registered verifier"):
        registered_verifier(spec)


def test_registered_verifier_returns_the_registered_function():
    from r1zero.verifiers.base import registered_verifier

    assert registered_verifier("integer") is get_verifier("integer")
