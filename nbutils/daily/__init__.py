"""Beyond the guide: the daily round (issue 11).

- :mod:`.run`: what a finished run saved (model, feature spec, neutralization settings) and its
  live predictions, computed exactly as the run computed them;
- :mod:`.client`: the numerapi client, with a timeout on every request;
- :mod:`.round`: the round (open or closed, its payout multipliers) through numerapi;
- :mod:`.lock` and :mod:`.names`: one writer per run directory; model names checked;
- :mod:`.submit`: ``python -m nbutils submit``, once per round, with an append-only log;
- :mod:`.standalone` and :mod:`.export`: the pickled ``predict`` for Numerai's model upload;
- :mod:`.upload_model`: ``python -m nbutils upload-model``;
- :mod:`.scores`: ``python -m nbutils scores``;
- :mod:`.cli`: the subcommands, registered by ``nbutils.run.pipeline.main``.
"""
