"""The nine notebooks, shipped inside the nbutils wheel as the package ``nbutils.notebooks``.

This file only makes ``importlib.resources.files("nbutils.notebooks")`` work in the wheel and in the
editable install (pyproject.toml maps ``nbutils.notebooks`` to this directory). Open the ``.ipynb``
files with Jupyter; ``python -m nbutils notebooks DIR`` copies them out of an installed package.
"""
