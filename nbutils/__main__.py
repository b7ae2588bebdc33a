"""``python -m nbutils``: the command line (see ``nbutils.pipeline``)."""

from nbutils.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main())
