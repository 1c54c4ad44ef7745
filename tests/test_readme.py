"""The README keeps its promises: two set-up commands, the second being what CI runs, and a
quickstart that is the example file the tests run."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from factories import escalation_workflow

from chimeway_lite.declarations import coerce_workflow

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)\n```", README, flags=re.S)


def test_the_readme_starts_with_exactly_two_setup_commands() -> None:
    first_block = README.index("```")
    assert README[:first_block].strip() == "# chimeway_lite"
    commands = _blocks("sh")[0].splitlines()
    assert len(commands) == 2
    assert commands[0].endswith("chimeway-lite demo")
    assert commands[1].endswith("python -m pytest")


def test_ci_runs_the_readme_test_command() -> None:
    test_command = _blocks("sh")[0].splitlines()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_the_quickstart_is_the_first_example_verbatim() -> None:
    quickstart = README[README.index("## Quickstart") :]
    (code,) = _blocks("python")[:1]
    assert quickstart.index("```python") < quickstart.index("\n## ")
    assert code + "\n" == (ROOT / "examples" / "01_escalation.py").read_text(encoding="utf-8")


def test_every_local_link_of_the_readme_exists() -> None:
    links = re.findall(r"\]\(([\w./-]+\.md)\)", README)
    assert links, "the README links its docs"
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert missing == []


def test_the_dict_declaration_of_the_readme_is_the_escalation_workflow() -> None:
    declared = README[README.index("## Declaring a journey") :]
    (code,) = re.findall(r"```python\n(.*?)\n```", declared, flags=re.S)[:1]
    assert coerce_workflow(ast.literal_eval(code)) == escalation_workflow()
