"""The core experiment: enhance low-resolution query features and measure retrieval.

For a dataset, a backbone and a list of area ratios, every method maps the
query features extracted at each ratio (paper Sec. 5.2: degrade, bicubic
up-sample to 224, extract) to enhanced features; the result is a tidy table
``method x ratio x metric`` with the mean Euclidean distance to the
high-resolution feature (Fig. 4/5), mAP (Fig. 6) and mP@k.

All features are L2-normalised before they are compared, enhanced or trained
on, so distances lie in [0, 2] as the paper's Fig. 2a/5 values suggest.
"""
from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fsrlib.data.datasets import RetrievalDataset, load_dataset
from fsrlib.data.protocols import PROTOCOLS, Fold, make_folds
from fsrlib.devices import resolve_device
from fsrlib.evaluation.retrieval import compute_map, compute_map_revisited, l2_normalize, rank_database
from fsrlib.features.degrade import DEGRADATIONS, REFERENCES, check_ratios, ratio_label
from fsrlib.features.extract import extract_features
from fsrlib.methods.isr_train import ISR_PROFILES
from fsrlib.methods.registry import METHODS, FoldContext, MethodSettings, get_method
from fsrlib.methods.student import check_student_changes
from fsrlib.methods.train import PAPER_GENERATOR_STEPS
from fsrlib.paths import atomic_path
from fsrlib.progress import shown


@dataclass
class ExperimentConfig(MethodSettings):
    """Everything that defines one run of the core experiment (paper values as defaults): the budget every method
    reads (:class:`fsrlib.methods.registry.MethodSettings`: epochs, critic updates, seed, device, cache, backbone, ratios,
    degradation) and what only the experiment reads, below."""

    dataset: str = "mini"
    data_dir: str | None = None
    methods: tuple[str, ...] = ("raw",)
    kappas: tuple[int, ...] = (1, 5, 10)
    #: training protocol (:mod:`fsrlib.data.protocols`, what a trained method may see): "paper", "group_disjoint",
    #: "cross_dataset"
    protocol: str = "paper"
    folds: int = 3
    fold_seed: int = 0
    #: the cross-dataset protocol's training collections and their folders (None: the default folder)
    train_on: tuple[str, ...] = ()
    train_data_dirs: tuple[str | None, ...] = ()
    #: older spelling of a one-collection cross-dataset run (``train_on=(name,)``)
    train_dataset: str | None = None
    train_data_dir: str | None = None

    def __post_init__(self) -> None:
        """Check every field, alone and together, before any work; lists are kept as tuples, ratios as floats."""
        problems = []
        for name, check in FIELD_CHECKS.items():
            try:
                setattr(self, name, check(getattr(self, name)))
            except ValueError as err:
                problems.append(f"{name}={getattr(self, name)!r}: {err}")
        if not problems:  # the combinations assume each field is well formed
            problems = combination_problems(self)
        if problems:
            raise ValueError("\n  ".join(["invalid ExperimentConfig (nothing was run):", *problems]))

    def method_settings(self) -> MethodSettings:
        """The part of this config a registered method reads, as a :class:`fsrlib.methods.registry.MethodSettings` of its own."""
        return MethodSettings(**{f.name: getattr(self, f.name) for f in fields(MethodSettings)})


#: Training budgets of the GANs, counted in generator steps where it matters. "paper": as long as Sec. 3.3 trains,
#: 6 epochs of Oxford5k's ~4,500 training images = 2,658 generator steps (:func:`fsrlib.methods.train.paper_generator_steps`),
#: with WGAN's 5 critic updates per step: about a minute on a GPU, 20-25 minutes per GAN on a 2-core CPU. "short":
#: the paper's *epoch count* on our small training sets (6 epochs of ~150-280 photos, about 60-100 steps, 25-40x
#: shorter than the paper): what the book retrains live in CI; its GANs are under-trained, and the chapters say so.
#: "cpu": the book's default on mini (20 epochs of 168 images, ~340 steps, 2 critic updates).
PROFILES: dict[str, dict[str, int]] = {"paper": {"steps": PAPER_GENERATOR_STEPS, "critic_iters": 5},
                                       "short": {"epochs": 6, "critic_iters": 5},
                                       "cpu": {"epochs": 20, "critic_iters": 2}}


def profile_settings(profile: str) -> dict[str, int]:
    """Training settings of a named size profile (see :data:`PROFILES`)."""
    try:
        return dict(PROFILES[profile])
    except KeyError:
        raise KeyError(f"unknown profile {profile!r}; known profiles: {sorted(PROFILES)}") from None


def as_tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    """``values`` as a tuple once it is a list, not a single string or number (``"raw"`` would be three names)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"expected a list such as ('a', 'b'), not the single value {values!r}")
    return tuple(values)


def distinct(values: Iterable[Any], what: str = "the list") -> tuple[Any, ...]:
    """``values`` as a tuple (:func:`as_tuple`) once no item is in it twice; else a ``ValueError`` naming them."""
    items = as_tuple(values)
    repeated = [v for v in dict.fromkeys(items) if items.count(v) > 1]
    if repeated:
        raise ValueError(f"{what} lists {', '.join(map(repr, repeated))} more than once; list each once")
    return items


def check_methods(methods: Iterable[str]) -> tuple[str, ...]:
    """``methods`` as a tuple once it names at least one method, each once (unknown names are :func:`run`'s
    ``KeyError``, since methods may be registered after the config is made)."""
    names = distinct(methods, "methods")
    if not names:
        raise ValueError("no method given: name at least one, e.g. ('raw', 'ridge')")
    return names


def whole_number(minimum: int, what: str) -> Callable[[Any], int]:
    """A check that a value is an integer (not a bool) of at least ``minimum``; ``what`` says what it counts."""
    def check(value: Any) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{what} must be a whole number of at least {minimum}, got {value!r}")
        return int(value)
    return check


check_seed = whole_number(0, "a seed")


def check_seeds(seeds: Iterable[int]) -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct non-negative integers, at least one; else a ``ValueError`` naming the
    bad one."""
    checked = distinct(seeds, "seeds")
    if not checked:
        raise ValueError("no seed given: list at least one, e.g. (0, 1, 2)")
    return tuple(check_seed(s) for s in checked)


def check_kappas(kappas: Iterable[int]) -> tuple[int, ...]:
    """The ``k`` of every mP@k: distinct whole numbers of at least 1."""
    return tuple(whole_number(1, "k of mP@k")(k) for k in distinct(kappas, "kappas"))


def one_of(choices: Sequence[str], what: str) -> Callable[[Any], str]:
    """A check that a value is one of ``choices``."""
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"unknown {what}; choose one of {', '.join(choices)}")
        return value
    return check


#: The fields :class:`ExperimentConfig` checks on their own, each with the check that returns its kept value.
FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "ratios": check_ratios, "methods": check_methods, "seed": check_seed,
    "epochs": whole_number(0, "epochs"), "steps": lambda v: v if v is None else whole_number(1, "steps")(v),
    "critic_iters": whole_number(1, "critic updates per generator update"),
    "kappas": check_kappas, "protocol": one_of(PROTOCOLS, "protocol"),
    "degradation": one_of(DEGRADATIONS, "degradation"), "reference": one_of(REFERENCES, "reference"),
    "pixel_profile": one_of(tuple(ISR_PROFILES), "profile (of the ISR models and the student)"),
    "train_on": as_tuple, "train_data_dirs": as_tuple,
    "unlabeled_count": lambda v: v if v is None else whole_number(0, "unlabeled photos to keep")(v),
    "student_changes": check_student_changes,
    "device": resolve_device,  # stored as torch spells it; "auto" becomes the best device here
}


def combination_problems(cfg: ExperimentConfig) -> list[str]:
    """What is contradictory or would be silently ignored among ``cfg``'s protocol fields (empty if nothing).

    ``train_on`` may stay set under the other protocols (a chapter switches
    protocols with ``replace``); the older ``train_dataset`` may not, since it
    overrides the protocol.
    """
    problems = []
    if cfg.train_dataset is not None and cfg.protocol == "group_disjoint":
        problems.append(f"train_dataset={cfg.train_dataset!r} means protocol='cross_dataset' (its older spelling), "
                        "so it cannot be combined with protocol='group_disjoint'; drop one of them")
    if cfg.train_dataset is not None and cfg.train_on:
        problems.append(f"train_dataset={cfg.train_dataset!r} and train_on={cfg.train_on!r} both name training "
                        "collections; give only train_on (train_dataset is its older spelling)")
    if cfg.train_data_dir is not None and cfg.train_dataset is None:
        problems.append(f"train_data_dir={cfg.train_data_dir!r} is the folder of train_dataset, which is not given; "
                        "use train_on=(name,), train_data_dirs=(folder,)")
    if len(cfg.train_data_dirs) > len(cfg.train_on):
        problems.append(f"train_data_dirs={cfg.train_data_dirs!r} has more folders than train_on={cfg.train_on!r} "
                        "has collections; give one folder (or None) per collection")
    sources = list(zip(cfg.train_on, [*cfg.train_data_dirs, *[None] * len(cfg.train_on)]))
    repeated = [f"{name} ({folder or 'default folder'})" for name, folder in dict.fromkeys(sources)
                if sources.count((name, folder)) > 1]
    if repeated:
        problems.append(f"train_on={cfg.train_on!r} lists {', '.join(repeated)} more than once (its images would "
                        "count twice); list each collection once")
    if cfg.protocol == "cross_dataset" and not (cfg.train_on or cfg.train_dataset):
        problems.append("protocol='cross_dataset' needs the collections to train on, e.g. train_on=('paris6k', 'mini')")
    if cfg.protocol == "group_disjoint":
        try:
            whole_number(2, "folds")(cfg.folds)
        except ValueError as err:
            problems.append(f"folds={cfg.folds!r}: {err}")
    return problems


def feature_kwargs(cfg: ExperimentConfig, progress: bool) -> dict:
    return {"backbone": cfg.backbone, "degradation": cfg.degradation, "reference": cfg.reference,
            "device": cfg.device, "cache_dir": cfg.cache_dir, "progress": progress}


def split_features(ds: RetrievalDataset, split: str, ratios: Sequence[float], cfg: ExperimentConfig,
                   progress: bool = True) -> dict[float, np.ndarray]:
    """L2-normalised features of a split at ratio 1 and every ratio in ``ratios``."""
    scales = tuple(dict.fromkeys((1.0, *ratios)))
    feats = extract_features(ds, split, scales, **feature_kwargs(cfg, progress))
    return {r: l2_normalize(f) for r, f in feats.items()}


@dataclass
class ExperimentResult:
    """What :func:`run` returns: the tidy table, every query's AP and distance, and what each fold trained on."""

    table: pd.DataFrame
    per_query: pd.DataFrame
    folds: list[str]
    #: enhanced query features ``{(method, seed): {ratio: (Q, D)}}`` (L2-normalised), for per-query views
    enhanced: dict[tuple[str, int], dict[float, np.ndarray]] = field(default_factory=dict)
    #: one row per model trained, as its method reported it (:attr:`fsrlib.methods.registry.FoldContext.trainings`:
    #: photos, seconds...), with ``method``, ``seed`` and ``fold``
    trainings: list[dict[str, Any]] = field(default_factory=list)


def resolve_folds(cfg: ExperimentConfig, ds: RetrievalDataset) -> list[Fold]:
    """The folds of ``cfg.protocol`` on ``ds``; ``train_dataset`` (old spelling) means the cross-dataset protocol.

    Training collections are loaded from their own folders and keyed by folder
    and content, so ``--train-dataset paris6k --train-data-dir A`` never trains
    on the test folder's images.
    """
    protocol, names = cfg.protocol, list(cfg.train_on)
    dirs = list(cfg.train_data_dirs) + [None] * (len(names) - len(cfg.train_data_dirs))
    if cfg.train_dataset is not None:
        protocol, names, dirs = "cross_dataset", [cfg.train_dataset], [cfg.train_data_dir]
    sources = [load_dataset(n, d) for n, d in zip(names, dirs)] if protocol == "cross_dataset" else []
    return make_folds(ds, protocol, k=cfg.folds, seed=cfg.fold_seed, train_sources=sources)


def run(cfg: ExperimentConfig, *, seeds: Sequence[int] | None = None, progress: bool = True) -> ExperimentResult:
    """Run the core experiment under ``cfg.protocol`` for every seed in ``seeds`` (default: ``cfg.seed``).

    Each fold's trained methods learn from that fold's training set only
    (:mod:`fsrlib.data.protocols`); its queries are enhanced by that model and ranked
    against the full database, and the folds' queries are pooled, so every query
    is scored once per seed. Untrained methods do not depend on the seed and are
    run once. ``progress``: bars for the extraction and for every model trained (:mod:`fsrlib.progress`).
    """
    with shown(progress):
        return _run(cfg, seeds, progress)


def _run(cfg: ExperimentConfig, seeds: Sequence[int] | None, progress: bool) -> ExperimentResult:
    cfg = replace(cfg)  # checks fields changed since the config was made (ExperimentConfig.__post_init__)
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise KeyError(f"unknown method(s) {unknown}; known methods: {sorted(METHODS)}")
    seeds = check_seeds(seeds) if seeds is not None else (cfg.seed,)
    ds = load_dataset(cfg.dataset, cfg.data_dir)
    if not ds.queries:
        raise ValueError(f"dataset {cfg.dataset!r} has no queries to score ({ds.root}): it is training data only. "
                         f"Score on a benchmark and train on it: protocol='cross_dataset', train_on=({cfg.dataset!r},)")
    trained = [m for m in cfg.methods if METHODS[m].trained]
    folds = resolve_folds(cfg, ds) if trained else []  # before extraction: a refused protocol costs nothing
    db = split_features(ds, "db", (), cfg, progress)[1.0]
    queries = split_features(ds, "query", cfg.ratios, cfg, progress)
    reference = score_queries(queries[1.0], queries[1.0], db, ds, cfg.kappas)
    records, per_query, kept, trainings = [], [], {}, []
    for ratio in cfg.ratios:
        records.append({"method": "hr", "ratio": ratio, "seed": seeds[0], **reference.row})
        per_query.append(reference.frame("hr", ratio, seeds[0]))
    for name in cfg.methods:
        for seed in (seeds if name in trained else seeds[:1]):
            run_cfg = replace(cfg, seed=seed)
            by_ratio = enhance_queries(name, run_cfg, ds, folds, queries, progress, trainings)
            kept[(name, seed)] = {r: l2_normalize(f) for r, f in by_ratio.items()}
            for ratio, enhanced in by_ratio.items():
                scores = score_queries(enhanced, queries[1.0], db, ds, cfg.kappas)
                records.append({"method": name, "ratio": ratio, "seed": seed, **scores.row})
                per_query.append(scores.frame(name, ratio, seed))
    wide = pd.DataFrame.from_records(records)
    wide.insert(2, "ratio_label", [ratio_label(r) for r in wide["ratio"]])
    tidy = wide.melt(id_vars=["method", "ratio", "ratio_label", "seed"], var_name="metric", value_name="value")
    tidy.insert(0, "dataset", ds.name)
    tidy.insert(1, "backbone", cfg.backbone)
    tidy.insert(2, "protocol", cfg.protocol if cfg.train_dataset is None else "cross_dataset")
    tidy.attrs["config"] = asdict(cfg)
    described = [f.describe() for f in folds]
    tidy.attrs["trained_on"] = "; ".join(described) if described else None
    pq = pd.concat(per_query, ignore_index=True)
    pq.insert(0, "query_name", [ds.queries[q] for q in pq["query"]])
    kept[("hr", seeds[0])] = {1.0: queries[1.0]}
    return ExperimentResult(table=tidy, per_query=pq, folds=described, enhanced=kept, trainings=trainings)


def enhance_queries(name: str, cfg: ExperimentConfig, ds: RetrievalDataset, folds: Sequence[Fold],
                    queries: dict[float, np.ndarray], progress: bool,
                    trainings: list[dict[str, Any]] | None = None) -> dict[float, np.ndarray]:
    """Every query's enhanced feature ``{ratio: (Q, D)}``, each query by the model of the fold that holds it.

    ISR methods give rows only at the ratios their models were trained for (SRCNN: 1/4, 1/9, 1/16). What the
    method reports of each model it trains is appended to ``trainings`` with the method, seed and fold.
    """
    method, settings = get_method(name), cfg.method_settings()
    if not method.trained:
        return method.run(FoldContext(test=ds, training_set=None, query_index=np.arange(len(ds.queries)),
                                      queries=queries,
                                      settings=settings, progress=progress))
    out: dict[float, np.ndarray] = {}
    for fold in folds:
        index = np.asarray(fold.query_index, dtype=np.int64)
        ctx = FoldContext(test=ds, training_set=fold.training_set, query_index=index,
                          queries={r: q[index] for r, q in queries.items()}, settings=settings, progress=progress,
                          extract_training=lambda fold=fold: training_features(fold.training_set, ds, cfg, progress))
        for r, feats in method.run(ctx).items():
            out.setdefault(r, np.full_like(queries[r], np.nan))[index] = feats
        if trainings is not None:
            trainings.extend({"method": name, "seed": cfg.seed, "fold": fold.name, **t} for t in ctx.trainings)
    return out


def training_features(train: RetrievalDataset, ds: RetrievalDataset, cfg: ExperimentConfig,
                      progress: bool) -> dict[float, np.ndarray]:
    """L2-normalised features of ``train``'s training images at ratio 1 and every ratio of ``cfg``.

    When every training image is one of the test collection's database images
    (the paper's and the group-disjoint protocols on Holidays), they are taken
    from the database's features at those ratios, extracted and cached once for
    all folds, instead of once per fold.
    """
    position = {p: i for i, p in enumerate(ds.images)}
    if train.root == ds.root and train.train and all(p in position for p in train.train):
        index = np.asarray([position[p] for p in train.train], dtype=np.int64)
        db = split_features(ds, "db", cfg.ratios, cfg, progress)
        return {r: f[index] for r, f in db.items()}
    return split_features(train, "train", cfg.ratios, cfg, progress)


@dataclass
class QueryScores:
    """Per-query AP and distance of one set of query features, and their means (one table row)."""

    ap: np.ndarray
    distance: np.ndarray
    row: dict[str, float]

    def frame(self, method: str, ratio: float, seed: int) -> pd.DataFrame:
        return pd.DataFrame({"method": method, "ratio": ratio, "seed": seed, "query": np.arange(len(self.ap)),
                             "ap": self.ap, "distance": self.distance})


def score_queries(enhanced: np.ndarray, hr: np.ndarray, db: np.ndarray, ds: RetrievalDataset,
                  kappas: Sequence[int]) -> QueryScores:
    """Distance to the HR query feature, mAP and mP@k of one set of query features (per query and mean).

    On a revisited benchmark, ``mAP`` and ``mP@k`` are the Medium setting's and
    ``mAP easy`` / ``mAP hard`` are added.
    """
    enhanced = l2_normalize(enhanced)
    ranks = rank_database(enhanced, db)
    m_ap, aps, _, mpr = compute_map(ranks, ds.gnd, kappas)
    distance = np.linalg.norm(enhanced - hr, axis=1)
    row = {"distance": float(distance.mean()), "mAP": m_ap}
    row.update({f"mP@{k}": v for k, v in mpr.items()})
    if ds.scoring == "revisited":
        settings = compute_map_revisited(ranks, ds.gnd, kappas)
        row.update({"mAP easy": settings["easy"]["mAP"], "mAP hard": settings["hard"]["mAP"]})
    return QueryScores(ap=aps, distance=distance, row=row)


def evaluate(enhanced: np.ndarray, hr: np.ndarray, db: np.ndarray, ds: RetrievalDataset,
             kappas: Sequence[int]) -> dict[str, float]:
    """The mean row of :func:`score_queries`."""
    return score_queries(enhanced, hr, db, ds, kappas).row


def pivot(table: pd.DataFrame, metric: str = "mAP") -> pd.DataFrame:
    """``method x ratio`` view of one metric, ratios in the paper's order."""
    sub = table[table["metric"] == metric]
    wide = sub.pivot_table(index="method", columns="ratio", values="value", sort=False)
    wide = wide[sorted(wide.columns, reverse=True)]
    wide.columns = [ratio_label(r) for r in wide.columns]
    return wide


def worse_than_raw(table: pd.DataFrame, metric: str = "mAP", tolerance: float = 0.005) -> pd.DataFrame:
    """Rows ``(method, ratio, value, raw, drop)`` where a method scores below the raw LR feature.

    "Never worse than raw" is the property an enhancement must have to be safe
    to deploy; this lists every violation larger than ``tolerance``.
    """
    sub = table[table["metric"] == metric]
    raw = sub[sub["method"] == "raw"].set_index("ratio")["value"]
    if raw.index.has_duplicates:
        twice = sorted({ratio_label(r) for r in raw.index[raw.index.duplicated()]})
        raise ValueError(f"the table has several raw {metric} rows at ratio {', '.join(twice)} (several runs or "
                         "a method listed twice); pass one run's table")
    rows = sub[~sub["method"].isin(["raw", "hr"])].copy()
    rows["raw"] = rows["ratio"].map(raw)
    rows["drop"] = rows["raw"] - rows["value"]
    return rows[rows["drop"] > tolerance][["method", "ratio_label", "value", "raw", "drop"]]


def save_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Save as CSV or JSON (by suffix); JSON also records the configuration. The file is written under a temporary
    name and renamed (:func:`fsrlib.paths.atomic_path`), so a failed save leaves no half table and keeps an older
    one whole."""
    path = Path(path)
    if path.suffix not in (".csv", ".json"):
        raise ValueError(f"save as .csv or .json, not {path.suffix!r}")
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            tmp.write_text(json.dumps({"config": table.attrs.get("config"), "trained_on": table.attrs.get("trained_on"),
                                       "rows": table.to_dict(orient="records")}, indent=1, default=str))
    return path
