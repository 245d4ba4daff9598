"""The ``r1zero`` entry point: a reader that stops early ends a command quietly; library bars are off."""

import os
import subprocess
import sys

import pytest

from r1zero.cli import quiet_libraries


@pytest.mark.parametrize("command", [["train", "--help"], ["eval", "--help"], ["--help"]])
def test_a_closed_pipe_ends_the_command_quietly(command):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write meets a broken pipe
    try:
        done = subprocess.run(
            [sys.executable, "-m", "r1zero", *command], stdout=write, stderr=subprocess.PIPE, timeout=120
        )
    finally:
        os.close(write)
    assert done.stderr.decode() == ""
    assert done.returncode == 1


def test_help_piped_to_head_leaves_no_traceback():
    done = subprocess.run(
        f"{sys.executable} -m r1zero train --help | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: r1zero train")


def test_other_broken_pipes_still_raise(monkeypatch):
    """Only a closed stdout is quiet: a broken pipe elsewhere (a worker's) keeps its traceback."""
    import r1zero.cli

    def broken(argv):
        raise BrokenPipeError("a worker's pipe")

    monkeypatch.setattr(r1zero.cli, "_run", broken)
    monkeypatch.setattr(r1zero.cli, "_stdout_closed", lambda: False)
    with pytest.raises(BrokenPipeError):
        r1zero.cli.main(["train"])


def test_quiet_libraries_turns_off_transformers_and_hub_bars(monkeypatch):
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    monkeypatch.delenv("TRANSFORMERS_NO_ADVISORY_WARNINGS", raising=False)
    hf_logging.enable_progress_bar()
    hf_logging.set_verbosity_warning()
    quiet_libraries()
    assert not hf_logging.is_progress_bar_enabled() and are_progress_bars_disabled()
    assert hf_logging.get_verbosity() == hf_logging.ERROR
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"  # and for worker processes


def test_quiet_libraries_leaves_bars_on_when_the_environment_asks(monkeypatch):
    from transformers.utils import logging as hf_logging

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    hf_logging.enable_progress_bar()
    quiet_libraries()
    assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
