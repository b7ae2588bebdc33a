"""The documented cron line and GitHub Actions workflow call the real ``submit`` command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from nbutils.daily.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "docs" / "examples" / "numerai-daily.yml"


def _submit_commands(text: str) -> list[list[str]]:
    found = []
    for line in text.splitlines():
        if "-m nbutils submit" in line:
            part = line[line.index("-m nbutils submit") + len("-m nbutils ") :]
            part = re.split(r"\s*(?:>>|;|\|\|)", part)[0]
            found.append(shlex.split(part.replace('"$MODEL_NAME"', "MY_MODEL")))
    return found


def test_workflow_is_valid_yaml_with_a_schedule_secrets_and_the_submit_command():
    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert triggers["schedule"][0]["cron"].split()[-1] == "2-6"
    job = flow["jobs"]["submit"]
    assert job["env"]["NUMERAI_SECRET_KEY"] == "${{ secrets.NUMERAI_SECRET_KEY }}"
    assert job["env"]["NUMERAI_PUBLIC_ID"] == "${{ secrets.NUMERAI_PUBLIC_ID }}"
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    (command,) = _submit_commands(runs)
    args = build_parser().parse_args(command)
    assert args.command == "submit" and args.run_dir == "runs/latest" and not args.dry_run


def test_docs_cron_line_parses_as_the_same_command():
    text = (ROOT / "docs" / "daily.md").read_text(encoding="utf-8")
    commands = _submit_commands(text)
    assert len(commands) >= 2
    flow_cmd = _submit_commands(WORKFLOW.read_text(encoding="utf-8"))[0]
    cron = [c for c in commands if "--data-dir" in c and "[--data-dir" not in " ".join(c)]
    assert cron, "the cron line is missing"
    assert cron[0] == flow_cmd
    build_parser().parse_args(cron[0])


def test_every_option_of_every_daily_command_is_in_the_docs_synopsis():
    """docs/daily.md's synopsis line of each command (``python -m nbutils CMD ...`` in a code
    block) names every option the command takes (``--ensemble`` of upload-model included)."""
    import argparse

    from nbutils.daily.cli import COMMANDS

    text = (ROOT / "docs" / "daily.md").read_text(encoding="utf-8")
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for command in COMMANDS:
        synopsis = [
            ln for ln in text.splitlines() if ln.startswith(f"python -m nbutils {command} ")
        ]
        assert synopsis, f"no synopsis line for {command} in docs/daily.md"
        options = {o for a in sub.choices[command]._actions for o in a.option_strings}
        missing = [
            o
            for o in sorted(options - {"-h", "--help"})
            if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", synopsis[0])
        ]
        assert not missing, f"docs/daily.md's synopsis of {command} lacks {missing}"
