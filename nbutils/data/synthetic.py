"""The synthetic generator: sizes, the statistical model, the plan of a dataset, era generation.

Numerai-shaped data offline (tutorial step 2A without the internet). Every era has its own random
stream ``[seed, kind, era]``, so eras do not depend on each other or on the layout; the writers
(:mod:`nbutils.data.write`) stream the eras into files. docs/data.md explains the model; in short,
the target of era ``e`` is ``y = s_e(x) / scale + noise * eps`` (see :class:`SyntheticModel`),
binned per era into 0, 0.25, 0.5, 0.75, 1 at 5/20/50/20/5 percent. Validation follows train
with no gap; every named target (``target`` is ``target_ender_20``), the benchmark models and the
meta model are described in :class:`SyntheticModel`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np

from nbutils.checks import check_int
from nbutils.data.layout import GROUPS, MAIN_TARGET, MAIN_TARGET_ALIAS, NAMED_TARGETS, TARGET_NAMES
from nbutils.errors import DataError


@dataclass(frozen=True)
class SyntheticSizes:
    """Sizes of a synthetic dataset (keyword arguments of :func:`make_synthetic_dataset`).

    The default (60 000 train rows x 60 features, 56 000 validation rows: enough eras to score
    with the embargo) lets the six-notebook chain run in about a minute on two cores;
    :data:`TINY_SIZES` is what the tests use.
    """

    n_train_eras: int = 30
    n_validation_eras: int = 28
    n_test_eras: int = 2  # eras after validation without targets ("test" rows)
    rows_per_era: int = 2000
    n_live: int = 2000  # rows of the single live era
    n_features: int = 60

    def check(self) -> None:
        """Raise :class:`DataError` unless every size is a sensible positive integer."""
        minimum = {
            "n_train_eras": 2,
            "n_validation_eras": 2,
            "n_test_eras": 0,
            "rows_per_era": 20,
            "n_live": 5,
            "n_features": 12,
        }
        for item in fields(self):
            value = getattr(self, item.name)
            check_int(value, f"synthetic size {item.name}", minimum[item.name], error=DataError)
        if self.rows_per_era >= 2**20 or self.n_live >= 2**20:
            raise DataError(
                "rows_per_era and n_live must be below 1,048,576: use more eras instead"
            )


#: Sizes for tests: builds in well under a second.
TINY_SIZES: dict[str, int] = {
    "n_train_eras": 12,
    "n_validation_eras": 6,
    "n_test_eras": 2,
    "rows_per_era": 60,
    "n_live": 40,
    "n_features": 18,
}


@dataclass(frozen=True)
class SyntheticModel:
    """The knobs of the synthetic data's statistical model (docs/data.md explains each).

    The continuous target of era ``e`` is ``y = s_e(x) / scale + noise * eps`` where ``s_e`` adds
    five parts on the centred feature bins ``x = (bin - 2) / sqrt(2)``:

    - nonlinear: ``a_j (1 + weight_drift * u_ej) * (x_j**2 - 1) / sqrt(0.7)`` (U-shaped effects);
    - interactions: ``b_k (1 + weight_drift * u_ek) * x_p * x_q``;
    - linear: ``linear_weight * c_j (1 + weight_drift * u_ej) * x_j``: a stable linear signal,
      what full neutralization throws away (so the mean CORR falls clearly at proportion 1);
    - group dispersion: ``group_weight * (+1, -1)`` times the row std of the bins of feature
      groups 0 and 1, standardized within the era (what notebook 02's group ``std`` measures);
    - risky: ``d_j (risk_mean + r_ej) * x_j`` with ``r_ej`` AR(1) regimes over the eras
      (``risk_persistence``, mostly shared: ``risk_shared``), standardized within each split,
      so these features' correlation with the target flips sign between eras (feature risk).
      Their mean weight ``risk_mean`` is below the regime's sd of 1: a model that learns them
      gains some mean and more era-to-era variance. Neutralizing part of the linear exposure
      removes more variance than mean and raises Sharpe; neutralizing all of it also throws
      away the stable linear signal, and Sharpe falls again (the guide's 0.3-0.5 advice); the
      nonlinear, interaction and group-dispersion parts survive it.

    ``scale`` makes the signal's sd about 1; ``eps`` is standard normal.
    The target is ``y`` binned per era into 0, 0.25, 0.5, 0.75, 1 at 5/20/50/20/5 percent.

    Named targets (docs/data.md): ``target`` is ``target_ender_20``; every other name multiplies
    each part's weight by its own ``1 + target_spread * z`` (fixed per name) and adds noise that
    correlates ``aux_noise_corr_20`` with the main target's; a 60-day target takes 0.8 times its
    name's signal and noise correlated ``aux_noise_corr_60`` with the main target's.

    Benchmark models: least squares of a target on the model basis (:func:`_design`, the first
    ``example_*`` parts of each kind), fitted on train, then the risky features' coefficients
    times ``example_risk_tilt``: the benchmark models lean on the era-flipping features more
    than their train average pays, so they share the model's risky part more than its stable
    signal, and neutralizing against the example predictions (the guide's 2F) trades a little
    mean for a higher Sharpe. The example predictions are the ranked blend of the cyrusd and
    teager2b models (``v5_lgbm_ct_blend``). The meta model is the per-era
    rank of ``meta_example_weight * gauss(example) + signal / sd + meta_noise * eps``.
    """

    group_corr: float = 0.3  # share of a feature's latent variance that its group shares
    signal_fraction: float = 0.2  # share of the features the target depends on
    noise: float = 10.0  # sd of the target's noise relative to the signal's sd
    weight_drift: float = 0.35  # era-to-era relative sd of the stable weights
    linear_weight: float = 0.7  # size of the stable linear weights relative to the others
    risk_weight: float = 2.0  # size of the risky features' weights relative to the others
    group_weight: float = 0.75  # weight of each of the first two groups' row dispersion (02's std)
    risk_mean: float = 0.8  # mean of the risky features' era multiplier (risk_mean + r_e)
    risk_persistence: float = 0.7  # AR(1) coefficient of the regime r_e from era to era
    risk_shared: float = 0.8  # share of the regime shocks common to all risky features
    target_spread: float = 0.35  # relative sd of another target name's part weights
    aux_noise_corr_20: float = 0.75  # other 20-day targets: noise correlation with target's
    aux_noise_corr_60: float = 0.45  # 60-day targets: the same, lower for the longer horizon
    meta_noise: float = 1.2  # sd of the meta model's noise relative to the signal's sd
    meta_example_weight: float = 1.0  # weight of the example predictions in the meta model
    example_features: int = 4  # linear and risky features (each) the benchmark models use
    example_squares: int = 3  # U-shaped features whose square the benchmark models use
    example_pairs: int = 1  # interactions whose product the benchmark models use
    example_groups: int = 2  # group dispersions (of groups 0 and 1) the benchmark models use
    example_risk_tilt: float = 3.0  # the benchmark models' risky coefficients times this


# Era kinds in the random-stream keys: train/validation/test eras share one numbering, live differs.
_KIND_ERA, _KIND_LIVE = 1, 2
_ID_MASK = np.uint64((1 << 60) - 1)
_WORDS_ADJ = tuple(
    (  # noqa: SIM905 - a word list reads better as text
        "abating ablaze abstract agile airy amber ancient arid astral azure balmy bold "
        "brisk bronze calm candid cobalt coral cosmic crisp dapper dusky eager early "
        "elfin fallow feral fickle floral frosty gentle gilded glassy hazy humble icy "
        "idle jovial keen lanky lunar mellow misty nimble noble oaken opal pallid placid "
        "quaint rapid rustic sable serene silken solar stout sultry tawny tidal umber "
        "vapid verdant wintry witty zesty"
    ).split()
)
_WORDS_NOUN = tuple(
    (  # noqa: SIM905 - a word list reads better as text
        "acorn anvil arbor atlas badger beacon birch bramble canyon cedar comet "
        "cormorant crater delta dune ember falcon fjord garnet glacier grove harbor "
        "heron island jasper juniper kestrel lagoon lantern ledger magnet marble meadow "
        "nebula orchid otter pebble quarry quill raven reef saddle sapphire spindle "
        "tundra valley vessel walrus willow yarrow zephyr"
    ).split()
)


@dataclass(frozen=True)
class Plan:
    """Everything about a synthetic dataset that does not depend on the era."""

    sizes: SyntheticSizes
    model: SyntheticModel
    seed: int
    nl: np.ndarray
    nl_w: np.ndarray
    pairs: np.ndarray  # (P, 2)
    pair_w: np.ndarray
    lin: np.ndarray
    lin_w: np.ndarray
    risk: np.ndarray
    risk_w: np.ndarray
    group_w: np.ndarray  # (2,) weights of the row dispersion of groups 0 and 1
    drift: np.ndarray  # (n_labels + 1, n_nl + n_pairs + n_lin): era multipliers of stable weights
    regime: np.ndarray  # (n_labels + 1, n_risk): r_ej, centred within each split
    name_mult: np.ndarray  # (len(TARGET_NAMES), n_parts): each target name's part multipliers
    scale: float

    @property
    def n_features(self) -> int:
        return self.sizes.n_features

    @functools.cached_property
    def group_of(self) -> np.ndarray:
        """(F,) group index of each feature, features in group-major order."""
        return _split_groups(self.n_features)[0]

    @functools.cached_property
    def number_in_group(self) -> np.ndarray:
        """(F,) 1-based number of each feature within its group (the legacy names)."""
        return _split_groups(self.n_features)[1]

    @functools.cached_property
    def v5_names(self) -> list[str]:
        """The opaque v5 name of each feature (the same for every seed)."""
        return _opaque_names(self.n_features)

    @functools.cached_property
    def v5_order(self) -> np.ndarray:
        """Permutation of the features: the v5 files' column order (the same for every seed)."""
        return np.random.default_rng([20210, self.n_features, 1]).permutation(self.n_features)

    @property
    def legacy_names(self) -> list[str]:
        return [
            f"feature_{GROUPS[g]}{n}"
            for g, n in zip(self.group_of, self.number_in_group, strict=True)
        ]

    @property
    def n_parts(self) -> int:
        """Parts of the signal: U-shapes, interactions, linear, risky, the two group dispersions."""
        return len(self.nl) + len(self.pair_w) + len(self.lin) + len(self.risk) + len(self.group_w)

    def design_columns(self) -> int:
        m = self.model
        return (
            1
            + len(self.lin[: m.example_features])
            + len(self.risk[: m.example_features])
            + len(self.nl[: m.example_squares])
            + len(self.pair_w[: m.example_pairs])
            + min(max(m.example_groups, 0), len(self.group_w))
        )

    def design_tilt(self) -> np.ndarray:
        """(design_columns,) multipliers of the benchmark models' fitted coefficients: 1, and
        ``example_risk_tilt`` on the risky features' columns (:func:`_design`'s order)."""
        m = self.model
        tilt = np.ones(self.design_columns())
        first = 1 + len(self.lin[: m.example_features])
        tilt[first : first + len(self.risk[: m.example_features])] = m.example_risk_tilt
        return tilt


def _split_groups(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Group index and 1-based number of each feature: six contiguous, near-equal groups."""
    group_of = np.empty(n_features, dtype=np.int64)
    number = np.empty(n_features, dtype=np.int64)
    for g, block in enumerate(np.array_split(np.arange(n_features), len(GROUPS))):
        group_of[block] = g
        number[block] = np.arange(1, len(block) + 1)
    return group_of, number


def _opaque_names(n_features: int) -> list[str]:
    """``feature_<adjective>_<adjective>_<noun>`` names, fixed for a given ``n_features``.

    Drawn from their own random stream (not the data seed), so every seed has the same columns.
    """
    na, nn = len(_WORDS_ADJ), len(_WORDS_NOUN)
    rng = np.random.default_rng([20210, n_features])
    picks = rng.choice(na * na * nn, size=n_features * 2, replace=False)
    names: list[str] = []
    for code in picks:
        a1, rest = divmod(int(code), na * nn)
        a2, noun = divmod(rest, nn)
        if a1 != a2:
            names.append(f"feature_{_WORDS_ADJ[a1]}_{_WORDS_ADJ[a2]}_{_WORDS_NOUN[noun]}")
        if len(names) == n_features:
            return names
    raise DataError(f"n_features={n_features} is too large for the synthetic name generator")


def _n_labels(sizes: SyntheticSizes) -> int:
    """Era numbers used: train, validation right after it (no gap), test, then live."""
    return sizes.n_train_eras + sizes.n_validation_eras + sizes.n_test_eras + 1


def _regimes(
    rng: np.random.Generator, sizes: SyntheticSizes, n_risk: int, phi: float, shared: float
) -> np.ndarray:
    """One AR(1) regime per risky feature over the era numbers, standardized within each split.

    ``r_ej = phi * r_(e-1)j + sqrt(1 - phi**2) * eta_ej`` where the shocks
    ``eta_ej = sqrt(shared) * c_e + sqrt(1 - shared) * o_ej`` share a common part ``c_e``, so the
    risky features tend to flip together (an era-level risk factor). Standardizing (mean 0,
    sd 1) within train, within validation and within the eras after it keeps each split's
    average weight at ``risk_mean`` and its swings the same size for every seed: signs flip
    from era to era, never as a shift between train and validation that a seed could make large.
    """
    n_labels = _n_labels(sizes)
    common, own = (
        rng.standard_normal((n_labels + 1, 1)),
        rng.standard_normal((n_labels + 1, n_risk)),
    )
    shocks = math.sqrt(shared) * common + math.sqrt(1 - shared) * own
    regime = np.empty_like(shocks)
    regime[0] = shocks[0]
    for e in range(1, n_labels + 1):
        regime[e] = phi * regime[e - 1] + math.sqrt(1 - phi * phi) * shocks[e]
    first_val = sizes.n_train_eras + 1
    after_val = first_val + sizes.n_validation_eras
    for lo, hi in ((1, sizes.n_train_eras + 1), (first_val, after_val), (after_val, n_labels + 1)):
        if hi - lo >= 2:
            segment = regime[lo:hi]
            regime[lo:hi] = (segment - segment.mean(axis=0)) / segment.std(axis=0)
    return regime


def make_plan(sizes: SyntheticSizes, model: SyntheticModel, seed: int) -> Plan:
    """Draw the roles and weights of the features and the era-level drift (stream ``[seed, 0]``)."""
    rng = np.random.default_rng([seed, 0])
    n_feat = sizes.n_features
    k = max(6, round(model.signal_fraction * n_feat))
    q = max(1, k // 4)
    n_nl, n_pair, n_lin = q, 2 * max(1, q // 2), q
    n_risk = max(1, k - n_nl - n_pair - n_lin)
    perm = rng.permutation(n_feat)
    cuts = np.cumsum([n_nl, n_pair, n_lin, n_risk])
    nl, pair_feats, lin, risk = np.split(perm[: cuts[-1]], cuts[:-1])

    def weights(n: int, size: float = 1.0) -> np.ndarray:
        return size * rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.6, 1.2, size=n)

    nl_w, pair_w, lin_w = weights(n_nl), weights(n_pair // 2), weights(n_lin, model.linear_weight)
    risk_w = weights(n_risk, model.risk_weight)
    n_labels = _n_labels(sizes)
    n_stable = n_nl + n_pair // 2 + n_lin
    drift = 1.0 + model.weight_drift * rng.standard_normal((n_labels + 1, n_stable))
    regime = _regimes(rng, sizes, n_risk, model.risk_persistence, model.risk_shared)
    n_parts = n_nl + n_pair // 2 + n_lin + n_risk + 2
    name_mult = 1.0 + model.target_spread * rng.standard_normal((len(TARGET_NAMES), n_parts))
    name_mult[TARGET_NAMES.index(_MAIN_NAME)] = 1.0  # target_ender_20 is the main target
    stable_var = (1 + model.weight_drift**2) * (
        np.sum(nl_w**2) + np.sum(pair_w**2) + np.sum(lin_w**2)
    )
    risk_var = (model.risk_mean**2 + 1) * np.sum(risk_w**2)
    group_w = model.group_weight * np.array([1.0, -1.0])
    # Keyword construction of a dataclass: `duplicates` pairs its shape with data.plan's
    # MemoryPlan(...) (coincidence of form, no shared logic).
    return Plan(
        sizes=sizes,
        model=model,
        seed=seed,
        nl=nl,
        nl_w=nl_w,
        pairs=pair_feats.reshape(-1, 2),
        pair_w=pair_w,
        lin=lin,
        lin_w=lin_w,
        risk=risk,
        risk_w=risk_w,
        group_w=group_w,
        drift=drift,
        regime=regime,
        name_mult=name_mult,
        scale=float(math.sqrt(stable_var + risk_var + np.sum(group_w**2))),
    )


def _era_rng(plan: Plan, kind: int, label: int) -> np.random.Generator:
    """The era's own random stream: eras do not depend on each other or on the layout."""
    return np.random.default_rng([plan.seed, kind, label])


def _row_ids(plan: Plan, kind: int, label: int, n: int) -> np.ndarray:
    """Unique opaque ids ``n`` + 15 hex digits: a bijective 60-bit mix of (kind, era, row)."""
    with np.errstate(over="ignore"):
        x = (np.uint64(kind) << np.uint64(40)) + (np.uint64(label) << np.uint64(20))
        x = x + np.arange(n, dtype=np.uint64)
        x = (x + np.uint64((plan.seed * 0x9E3779B97F4A7C15) & ((1 << 60) - 1))) & _ID_MASK
        x = (x * np.uint64(0xBF58476D1CE4E5B9)) & _ID_MASK
        x ^= x >> np.uint64(31)
        x = (x * np.uint64(0x94D049BB133111EB)) & _ID_MASK
        x ^= x >> np.uint64(29)
    return x


def _format_ids(codes: np.ndarray) -> np.ndarray:
    return np.array([f"n{int(c):015x}" for c in codes], dtype=object)


def _equal_frequency_bins(latent: np.ndarray) -> np.ndarray:
    """Per row of ``latent`` (features x rows), bins 0..4 of equal frequency: ``rank * 5 // n``.

    ``rank * 5 // n >= i`` exactly when ``rank >= ceil(i * n / 5)``, so the bin is the number of
    the four order statistics ``ceil(i * n / 5)`` (found by ``np.partition``, no full sort) that
    the value reaches.
    """
    n = latent.shape[1]
    cuts = [-(-i * n // 5) for i in range(1, 5)]
    thresholds = np.partition(latent, cuts, axis=1)[:, cuts]
    bins = np.zeros(latent.shape, dtype=np.int8)
    for i in range(4):
        bins += latent >= thresholds[:, i : i + 1]
    return bins


def _era_features(plan: Plan, rng: np.random.Generator, n: int) -> np.ndarray:
    """Feature bins of one era, shape (features, rows), int8 0..4.

    Latent ``z_f = sqrt(group_corr) * G_group(f) + sqrt(1 - group_corr) * e_f`` (standard
    normals), then five equal-frequency bins per feature within the era.
    """
    rho = plan.model.group_corr
    group_factor = rng.standard_normal((len(GROUPS), n), dtype=np.float32)
    own = rng.standard_normal((plan.n_features, n), dtype=np.float32)
    latent = math.sqrt(rho) * group_factor[plan.group_of] + math.sqrt(1 - rho) * own
    return _equal_frequency_bins(latent)


def _centred(cols: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``(bin - 2) / sqrt(2)``: the bins of features ``idx``, mean 0 and variance 1."""
    return (cols[idx].astype(np.float64) - 2.0) / math.sqrt(2.0)


def _nonlinear(x: np.ndarray) -> np.ndarray:
    """U-shaped effect ``(x**2 - 1) / sqrt(0.7)``: mean 0, variance 1 on the five bins."""
    return (x * x - 1.0) / math.sqrt(0.7)


#: The name of the main target: ``target`` is ``target_<name>_20``.
_MAIN_NAME = MAIN_TARGET_ALIAS.removeprefix("target_").removesuffix("_20")


def _era_parts(plan: Plan, cols: np.ndarray, label: int) -> np.ndarray:
    """The weighted parts of era ``label``'s signal, shape (n_parts, rows), divided by ``scale``.

    Their sum is the main target's noiseless signal ``s_e(x) / scale`` (:class:`SyntheticModel`);
    another target name weighs them with its own multipliers (``plan.name_mult``).
    """
    drift = plan.drift[label]
    n_nl, n_pair = len(plan.nl), len(plan.pair_w)
    x_pair = _centred(cols, plan.pairs.ravel()).reshape(len(plan.pair_w), 2, -1)
    parts = [
        (plan.nl_w * drift[:n_nl])[:, None] * _nonlinear(_centred(cols, plan.nl)),
        (plan.pair_w * drift[n_nl : n_nl + n_pair])[:, None] * (x_pair[:, 0] * x_pair[:, 1]),
        (plan.lin_w * drift[n_nl + n_pair :])[:, None] * _centred(cols, plan.lin),
        (plan.risk_w * (plan.model.risk_mean + plan.regime[label]))[:, None]
        * _centred(cols, plan.risk),
        plan.group_w[:, None] * _group_dispersions(plan, cols, len(plan.group_w)),
    ]
    return np.vstack(parts) / plan.scale


def _group_dispersions(plan: Plan, cols: np.ndarray, n: int) -> np.ndarray:
    """(n, rows): the standardized row dispersion of groups 0..n-1."""
    if n == 0:
        return np.zeros((0, cols.shape[1]))
    return np.vstack(
        [_group_dispersion(cols, np.flatnonzero(plan.group_of == group)) for group in range(n)]
    )


def _era_signal(plan: Plan, cols: np.ndarray, label: int) -> np.ndarray:
    """The main target's noiseless signal ``s_e(x) / scale`` of era ``label``."""
    return _era_parts(plan, cols, label).sum(axis=0)


def _group_dispersion(cols: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row std of the features ``idx`` (a group), standardized within the era (mean 0, sd 1)."""
    spread = _centred(cols, idx).std(axis=0)
    sd = spread.std()
    return (spread - spread.mean()) / sd if sd > 0 else np.zeros_like(spread)


def _rank_pct(values: np.ndarray) -> np.ndarray:
    """``(rank + 0.5) / n`` with ranks 0..n-1 (ties broken by position): uniform on (0, 1)."""
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return (ranks + 0.5) / len(values)


def _target_bins(y: np.ndarray) -> np.ndarray:
    """Bin a continuous target within its era: 0, .25, .5, .75, 1 at 5/20/50/20/5 percent."""
    levels = np.searchsorted(np.array([0.05, 0.25, 0.75, 0.95]), _rank_pct(y), side="right")
    return (levels * 0.25).astype(np.float32)


def _era_targets(plan: Plan, rng: np.random.Generator, parts: np.ndarray) -> dict[str, np.ndarray]:
    """``target`` and every named target of one era: each name's signal plus correlated noise.

    The main target's noise is ``eps``; another 20-day target's noise correlates
    ``aux_noise_corr_20`` with it, every 60-day target's ``aux_noise_corr_60`` (and more with its
    own name's 20-day noise, the overlapping part of its longer window).
    """
    m = plan.model
    n = parts.shape[1]
    eps = rng.standard_normal(n)
    r20, r60 = m.aux_noise_corr_20, m.aux_noise_corr_60
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(TARGET_NAMES):
        signal = plan.name_mult[k] @ parts
        own20, own60 = rng.standard_normal((2, n))
        noise20 = eps if name == _MAIN_NAME else r20 * eps + math.sqrt(1 - r20 * r20) * own20
        rho = r60 / (1.0 if name == _MAIN_NAME else r20)  # corr of the 60-day with its 20-day
        noise60 = rho * noise20 + math.sqrt(max(1 - rho * rho, 0.0)) * own60
        out[f"target_{name}_20"] = _target_bins(signal + m.noise * noise20)
        out[f"target_{name}_60"] = _target_bins(0.8 * signal + m.noise * noise60)
    out[MAIN_TARGET] = out[MAIN_TARGET_ALIAS]
    return {name: out[name] for name in (MAIN_TARGET, *NAMED_TARGETS)}


def _design(plan: Plan, cols: np.ndarray) -> np.ndarray:
    """The benchmark models' inputs (rows x columns): 1, the first ``example_features`` linear
    and risky features, the squares of the first ``example_squares`` U-shaped features, the
    products of the first ``example_pairs`` interactions and the dispersion of the first
    ``example_groups`` groups."""
    m = plan.model
    pairs = plan.pairs[: m.example_pairs]
    x_pair = _centred(cols, pairs.ravel()).reshape(len(pairs), 2, -1)
    parts = [
        np.ones((1, cols.shape[1])),
        _centred(cols, plan.lin[: m.example_features]),
        _centred(cols, plan.risk[: m.example_features]),
        _nonlinear(_centred(cols, plan.nl[: m.example_squares])),
        x_pair[:, 0] * x_pair[:, 1],
        _group_dispersions(plan, cols, min(max(m.example_groups, 0), len(plan.group_w))),
    ]
    return np.ascontiguousarray(np.vstack(parts).T)


@dataclass
class EraBlock:
    """One era of synthetic rows."""

    ids: np.ndarray  # object array of str
    id_codes: np.ndarray  # uint64, sorts like ids
    era: str
    data_type: str
    cols: np.ndarray  # (features, rows) int8
    targets: dict[str, np.ndarray] | None  # None: unknown (NaN)
    design: np.ndarray  # (rows, d) the benchmark models' inputs
    signal: np.ndarray | None = None  # the main target's noiseless signal (validation only)
    noise: np.ndarray | None = None  # the meta model's own noise (validation only)

    def __len__(self) -> int:
        return self.cols.shape[1]


def _make_era(
    plan: Plan,
    kind: int,
    label: int,
    n: int,
    era: str,
    data_type: str,
    with_targets: bool,
    with_meta: bool = False,
) -> EraBlock:
    """Generate one era: features, then (when known) targets, then the meta model's inputs."""
    rng = _era_rng(plan, kind, label)
    cols = _era_features(plan, rng, n)
    codes = _row_ids(plan, kind, label, n)
    targets = signal = noise = None
    if with_targets:
        parts = _era_parts(plan, cols, label)
        targets = _era_targets(plan, rng, parts)
        if with_meta:
            signal = parts.sum(axis=0)
            noise = rng.standard_normal(n)
    return EraBlock(
        _format_ids(codes), codes, era, data_type, cols, targets, _design(plan, cols), signal, noise
    )


def _era_labels(sizes: SyntheticSizes, layout: str) -> dict[str, list[tuple[int, str]]]:
    """(era number, era label) of each split: validation starts right after train (no gap, as in
    Numerai's v5 files), then the test eras, then the live era."""
    t, v, s = sizes.n_train_eras, sizes.n_validation_eras, sizes.n_test_eras
    width = max(4, len(str(_n_labels(sizes))))
    label = (lambda e: f"era{e}") if layout == "legacy" else (lambda e: f"{e:0{width}d}")
    first_val = t + 1
    first_after = first_val + v
    live = first_after + s
    return {
        "train": [(e, label(e)) for e in range(1, t + 1)],
        "validation": [(e, label(e)) for e in range(first_val, first_after)],
        "test": [(e, label(e)) for e in range(first_after, live)],
        "live": [(live, "eraX" if layout == "legacy" else label(live))],
    }


def iter_split(plan: Plan, layout: str, split: str) -> Iterator[EraBlock]:
    """The eras of one split, in era order."""
    sizes = plan.sizes
    for number, label in _era_labels(sizes, layout)[split]:
        if split == "live":
            yield _make_era(plan, _KIND_LIVE, number, sizes.n_live, label, "live", False)
        elif split == "test":
            yield _make_era(plan, _KIND_ERA, number, sizes.rows_per_era, label, "test", False)
        else:
            yield _make_era(
                plan,
                _KIND_ERA,
                number,
                sizes.rows_per_era,
                label,
                split,
                True,
                with_meta=split == "validation",
            )


#: The targets of the benchmark models, by the model's name after ``<prefix>_lgbm_``
#: (:func:`nbutils.data.layout.benchmark_columns` lists the columns).
BENCHMARK_TARGETS: dict[str, str] = {
    "cyrusd20": "target_cyrusd_20",
    "ender20": "target_ender_20",
    "teager2b20": "target_teager2b_20",
    "ender60": "target_ender_60",
}
#: The two models blended into the example predictions (``v5_lgbm_ct_blend``).
BLEND_MODELS: tuple[str, str] = ("cyrusd20", "teager2b20")


class BenchmarkModels:
    """Least squares of each benchmark target on :func:`_design`, accumulated era by era.

    ``predict`` gives each model's per-era ranks ``(rank + 0.5) / n`` and the blend of
    :data:`BLEND_MODELS` (ranks of the sum of their Gaussianized ranks), the example predictions.
    """

    def __init__(self, n_cols: int, tilt: np.ndarray | None = None) -> None:
        self.tilt = np.ones(n_cols) if tilt is None else np.asarray(tilt, dtype=np.float64)
        self.xtx = np.zeros((n_cols, n_cols))
        self.xty = np.zeros((n_cols, len(BENCHMARK_TARGETS)))
        self.n = 0

    def add(self, block: EraBlock) -> None:
        assert block.targets is not None
        y = np.column_stack([block.targets[t] for t in BENCHMARK_TARGETS.values()])
        self.xtx += block.design.T @ block.design
        self.xty += block.design.T @ y
        self.n += len(block)

    def coef(self) -> np.ndarray:
        ridge = 1e-3 * max(self.n, 1) * np.eye(len(self.xty))
        ridge[0, 0] = 1e-9
        return np.linalg.solve(self.xtx + ridge, self.xty) * self.tilt[:, None]

    @staticmethod
    def predict(coef: np.ndarray, block: EraBlock) -> dict[str, np.ndarray]:
        """Each model's fitted values as ranks within the era, and the blend under "blend"."""
        fitted = block.design @ coef
        out = {name: _rank_pct(fitted[:, k]) for k, name in enumerate(BENCHMARK_TARGETS)}
        out["blend"] = _rank_pct(sum(_gauss(out[name]) for name in BLEND_MODELS))
        return out


def _gauss(ranks: np.ndarray) -> np.ndarray:
    """The standard normal quantiles of ranks in (0, 1)."""
    from scipy.special import ndtri

    return ndtri(ranks)


def meta_model(plan: Plan, block: EraBlock, example: np.ndarray) -> np.ndarray:
    """The meta model of a validation era: per-era ranks of
    ``meta_example_weight * gauss(example) + signal / sd(signal) + meta_noise * noise``."""
    assert block.signal is not None and block.noise is not None
    m = plan.model
    sd = block.signal.std()
    signal = block.signal / sd if sd > 0 else block.signal
    return _rank_pct(m.meta_example_weight * _gauss(example) + signal + m.meta_noise * block.noise)


def chunk_rows(n_features: int) -> int:
    """Rows per parquet row group / CSV batch: about 32 MB of int8 features."""
    return max(1024, (32 << 20) // max(n_features, 1))


def chunks(blocks: Iterator[EraBlock], n_features: int) -> Iterator[list[EraBlock]]:
    """Group consecutive eras into chunks of about :func:`chunk_rows` rows."""
    chunk: list[EraBlock] = []
    rows = 0
    for block in blocks:
        chunk.append(block)
        rows += len(block)
        if rows >= chunk_rows(n_features):
            yield chunk
            chunk, rows = [], 0
    if chunk:
        yield chunk


def stack_eras(chunk: list[EraBlock]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ids, eras, data types (object arrays) and features (features x rows) of a chunk."""
    ids = np.concatenate([b.ids for b in chunk])
    eras = np.concatenate([np.full(len(b), b.era, dtype=object) for b in chunk])
    types = np.concatenate([np.full(len(b), b.data_type, dtype=object) for b in chunk])
    cols = np.concatenate([b.cols for b in chunk], axis=1)
    return ids, eras, types, cols


def stacked_targets(chunk: list[EraBlock], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each target over the chunk, NaN where unknown."""
    return {
        name: np.concatenate(
            [
                b.targets[name] if b.targets is not None else np.full(len(b), np.nan, np.float32)
                for b in chunk
            ]
        )
        for name in names
    }
