"""The README's opening commands are the ones CI and users actually run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def opening_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_a_run_and_a_test_command():
    run, test = opening_commands()
    assert run.endswith("chatsio serve")
    assert "pytest" in test


def test_ci_runs_exactly_the_readme_test_command():
    _, test = opening_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines
