"""``python -m nbutils``: the command line (see ``nbutils.run.pipeline``)."""

from nbutils.run.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main())
