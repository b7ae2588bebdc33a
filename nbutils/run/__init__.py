"""The machinery that runs the notebooks (not a tutorial step; the learner never needs it).

- :mod:`.pipeline`: the papermill chain, the HTML index and the command line (``python -m nbutils``);
- :mod:`.parameters`: each notebook's parameter schema and the checks of its parameters cell;
- :mod:`.steps`: a notebook opened alone makes the earlier steps' artifacts with the library;
- :mod:`.notebook_setup`: what each notebook's setup cell does (check the parameters, make what is missing);
- :mod:`.artifacts`: the run directory (where each artifact lives, reading and writing them);
- :mod:`.catalog`: which notebook writes which artifact (a leaf every other module may use);
- :mod:`.fingerprints`: each artifact's fingerprint, so that runs never mix;
- :mod:`.lock`: the run directory's lock;
- :mod:`.keys`: Numerai API keys from the environment, ``.env`` or notebook secrets, and redaction;
- :mod:`.project`: the install source, the badges and the setup cell of every notebook.

Nothing here imports in a circle (``tests/test_imports.py`` checks the whole package).
"""
