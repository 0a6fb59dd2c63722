"""The README's opening commands are the ones CI and users actually run."""

from __future__ import annotations

from pathlib import Path

from readme import blocks

ROOT = Path(__file__).resolve().parent.parent


def opening_commands() -> tuple[str, str]:
    """The first block's one command (run) and the second's (test)."""
    run, test = ([*b.code.splitlines()] for b in blocks()[:2])
    assert len(run) == 1, f"the first block is the run command alone: {run}"
    assert len(test) == 1, f"the second block is the test command alone: {test}"
    return run[0], test[0]


def test_readme_opens_with_a_run_and_a_test_command():
    run, test = opening_commands()
    assert run.endswith("chatsio serve")
    assert "pytest" in test
    assert "pytest" not in run


def test_ci_runs_exactly_the_readme_test_command():
    _, test = opening_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == test


def test_every_shell_and_python_block_is_marked():
    """Each block is either run as an example or says why it is not."""
    for block in blocks():
        assert block.mark is not None, f"README.md:{block.line} has no mark"
        assert block.example or block.mark.startswith("not run: "), block.mark
