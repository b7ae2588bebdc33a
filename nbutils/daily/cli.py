"""The daily subcommands: ``submit``, ``export-model``, ``upload-model``, ``scores``.

``nbutils.run.pipeline.main`` hands the command line to :func:`dispatch` first; each command
returns an exit code (:mod:`nbutils.daily.errors`, documented in docs/daily.md). Errors are
printed as one line on stderr, redacted of the keys.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from nbutils.daily.client import numerapi_too_old
from nbutils.daily.errors import DailyError
from nbutils.daily.names import check_model_name
from nbutils.errors import NbutilsError
from nbutils.run.keys import load_keys, redact

COMMANDS = ("submit", "export-model", "upload-model", "scores")


def build_parser() -> argparse.ArgumentParser:
    """The daily commands' parser (``python -m nbutils --help`` lists them with run/notebooks)."""
    parser = argparse.ArgumentParser(prog="python -m nbutils", description="the daily round")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``submit``, ``export-model``, ``upload-model`` and ``scores`` to ``sub``, one help line
    each (also used by :func:`nbutils.run.pipeline.build_parser`, so that ``--help`` lists them)."""
    p = sub.add_parser("submit", help="upload this round's live predictions of a finished run")
    p.add_argument("--run-dir", required=True, help="a finished run (python -m nbutils run)")
    p.add_argument("--model-name", required=True, help="your Numerai model's name")
    p.add_argument(
        "--data-dir",
        default=None,
        help="where the round's files go, under DATA_DIR/<version>/rounds/ (default: the run's "
        "rounds/<round>/)",
    )
    p.add_argument("--dry-run", action="store_true", help="write the file, upload nothing")
    p.add_argument("--force", action="store_true", help="upload even if this round was submitted")
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="notebook 08's target ensemble (ensemble.json) instead of the run's model.txt",
    )

    p = sub.add_parser("export-model", help="pickle predict() for Numerai's model upload")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True, help="the .pkl file to write")
    p.add_argument("--check", action="store_true", help="run it in a fresh Python without nbutils")
    p.add_argument(
        "--docker-image",
        default=None,
        help='the image to compare versions with, e.g. "Python 3.11"',
    )
    p.add_argument(
        "--benchmark-models",
        default=None,
        help="live_benchmark_models.parquet (default: the one in the run's dataset)",
    )
    p.add_argument(
        "--benchmark-column",
        default=None,
        help="the benchmark model to neutralize against (default: the example predictions' one)",
    )
    p.add_argument("--force", action="store_true", help="a Python mismatch only warns")
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="notebook 08's target ensemble (ensemble.json) instead of the run's model.txt",
    )
    p.add_argument(
        "--runner-python",
        default=None,
        help="the Python --check runs it with (e.g. a venv with the image's pins)",
    )

    p = sub.add_parser("upload-model", help="upload a pickled model with numerapi's model_upload")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--model-name", required=True)
    p.add_argument("--pickle", default=None, help="default: export and check one first")
    p.add_argument("--docker-image", default=None, help="one of the names Numerai lists")
    p.add_argument("--data-version", default=None, help="one of the names Numerai lists")
    p.add_argument(
        "--force",
        action="store_true",
        help="upload another run's export or another Python's pickle anyway",
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="notebook 08's target ensemble (ensemble.json) instead of the run's model.txt",
    )

    p = sub.add_parser("scores", help="recent round scores of a model (table and plot)")
    p.add_argument("--model-name", required=True)
    p.add_argument("--rounds", type=int, default=20, help="how many recent rounds")
    p.add_argument("--out", default="scores.png", help="where the plot is saved")
    p.add_argument("--stake", type=float, default=None, help="NMR staked, for the payout column")


def _submit(args: argparse.Namespace) -> int:
    from nbutils.daily.submit import submit

    submit(
        args.run_dir,
        args.model_name,
        args.data_dir,
        dry_run=args.dry_run,
        force=args.force,
        ensemble=args.ensemble,
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from nbutils.daily.export import check_pickle, export_model

    path = export_model(
        args.run_dir,
        args.out,
        benchmark_models=args.benchmark_models,
        column=args.benchmark_column,
        ensemble=args.ensemble,
    )
    print(f"wrote {path}")
    if args.check:
        report = check_pickle(
            path,
            benchmark=args.benchmark_models,
            docker_image=args.docker_image,
            run_dir=args.run_dir,
            force=args.force,
            python=args.runner_python,
        )
        print(report.describe(), file=sys.stdout if report.ok else sys.stderr)
        return 0 if report.ok else 1
    return 0


def _upload(args: argparse.Namespace) -> int:
    from nbutils.daily.upload_model import upload_model

    check_model_name(args.model_name)
    upload_model(
        args.run_dir,
        args.model_name,
        pickle=args.pickle,
        docker_image=args.docker_image,
        data_version=args.data_version,
        force=args.force,
        ensemble=args.ensemble,
    )
    return 0


def _scores(args: argparse.Namespace) -> int:
    from nbutils.daily.scores import scores_command

    check_model_name(args.model_name)
    scores_command(args.model_name, rounds=args.rounds, out=args.out, stake=args.stake)
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "submit": _submit,
    "export-model": _export,
    "upload-model": _upload,
    "scores": _scores,
}


def dispatch(argv: Sequence[str] | None = None) -> int | None:
    """Run a daily command and return its exit code; None when ``argv`` is not one of them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        return None
    args = build_parser().parse_args(argv)
    keys = load_keys()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return HANDLERS[args.command](args)
    except AttributeError as err:  # an API an old numerapi lacks: say so, never a traceback
        too_old = numerapi_too_old(err)
        if too_old is None:
            raise
        print(f"error: {too_old}", file=sys.stderr)
        return too_old.exit_code
    except DailyError as err:
        print(f"error: {redact(str(err), keys)}", file=sys.stderr)
        return err.exit_code
    except NbutilsError as err:
        print(f"error: {redact(str(err), keys)}", file=sys.stderr)
        return 1
