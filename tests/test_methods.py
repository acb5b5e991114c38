"""The method registry (fsrlib.methods.registry): one entry and one signature per method, read by the experiment, the
CLI and the figures."""
from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from fsrlib.experiment import ExperimentConfig, run
from fsrlib.methods.registry import METHODS, FoldContext, MethodSettings, get_method, register_method
from fsrlib.plotting import method_colors, method_label


@pytest.fixture
def registry():
    """Registrations made by a test are undone afterwards."""
    before = dict(METHODS)
    yield METHODS
    METHODS.clear()
    METHODS.update(before)


def test_every_method_has_one_entry_with_what_its_readers_need():
    assert set(METHODS) == {"raw", "bicubic", "ridge", "mlp", "cnn_baseline", "gan_distance", "fsrgan", "fsrgan_r3",
                            "fsrgan_residual", "srcnn", "vdsr", "student"}
    budget_fields = {f.name for f in fields(MethodSettings)}
    for name, method in METHODS.items():
        assert method.name == name and method.label and method.summary
        assert set(method.reads) <= budget_fields, name
    assert {m for m, v in METHODS.items() if not v.trained} == {"raw", "bicubic"}
    assert {m for m, v in METHODS.items() if v.input == "pixels"} == {"srcnn", "vdsr", "student"}
    # the generator methods (those with TrainConfig changes) are exactly the ones that read the GAN budget
    generators = {m for m, v in METHODS.items() if v.train_changes is not None}
    assert generators == {"cnn_baseline", "gan_distance", "fsrgan", "fsrgan_r3", "fsrgan_residual"}
    assert {m for m, v in METHODS.items() if "critic_iters" in v.reads} == generators
    # every method has a colour in the figures; distinct ones except raw and bicubic, which are one thing
    colors = method_colors(["hr", *METHODS])
    assert all(colors.values()) and colors["raw"] == colors["bicubic"]
    assert len(set(colors.values())) == len(colors) - 1
    assert method_label("raw") == "raw LR feature (bicubic)" and method_label("something_else") == "something_else"


def test_an_unknown_name_or_field_is_refused_with_what_exists(registry):
    with pytest.raises(KeyError, match="known methods: bicubic, cnn_baseline"):
        get_method("magic")
    with pytest.raises(ValueError, match="'epoch'.*MethodSettings does not have"):
        register_method("typo", summary="reads a field that does not exist", reads=("epoch",))
    with pytest.raises(ValueError, match="input must be"):
        register_method("odd", summary="works on neither", input="audio")
    assert "typo" not in METHODS and "odd" not in METHODS


def test_an_untrained_method_has_no_training_set_to_ask_for():
    queries = {1.0: np.eye(3, dtype=np.float32), 0.25: np.ones((3, 3), dtype=np.float32)}
    ctx = FoldContext(test=None, training_set=None, query_index=np.arange(3), queries=queries,
                      settings=MethodSettings(ratios=(1.0, 0.25)))
    out = get_method("raw").run(ctx)
    assert set(out) == {1.0, 0.25} and out[0.25] is queries[0.25]
    with pytest.raises(ValueError, match="no training features"):
        get_method("ridge").run(ctx)


def test_a_decorated_function_is_a_method_the_experiment_runs_fold_by_fold(registry, tmp_path):
    """Adding a method is one decorated function: the experiment hands it each fold's training features and
    queries, and scores what it returns."""
    seen = []

    @register_method("toward_mean", summary="pull each query 30% of the way to the training features' mean",
                     reads=("seed",))
    def toward_mean(ctx: FoldContext) -> dict:
        train = ctx.training_features()
        seen.append((len(ctx.query_index), {r: len(f) for r, f in train.items()}))
        mean = train[1.0].mean(axis=0)
        ctx.trainings.append({"photos": len(train[1.0])})  # what it trained on, returned by the experiment
        return ctx.map_queries(lambda f: f + 0.3 * (mean - f))

    cfg = ExperimentConfig(ratios=(1 / 16,), methods=("raw", "toward_mean"), protocol="group_disjoint", folds=2,
                           cache_dir=str(tmp_path), data_dir=str(tmp_path / "datasets" / "mini-v1"))
    result = run(cfg, progress=False)
    assert len(seen) == 2  # one call per fold, each with its own queries and training photos
    assert sum(n for n, _ in seen) == 28 and all(set(sizes) == {1.0, 1 / 16} for _, sizes in seen)
    maps = result.table[result.table["metric"] == "mAP"].set_index("method")["value"]
    assert maps["toward_mean"] > 0 and maps["toward_mean"] != maps["raw"]
    assert not np.isnan(result.enhanced[("toward_mean", 0)][1 / 16]).any()  # every query got a feature
    assert [(t["method"], t["seed"], t["photos"]) for t in result.trainings] == \
        [("toward_mean", 0, n) for n in (seen[0][1][1.0], seen[1][1][1.0])]
    assert sorted(t["fold"] for t in result.trainings) == sorted(set(t["fold"] for t in result.trainings))


@pytest.mark.parametrize("name", ["srcnn", "vdsr"])
def test_the_isr_methods_train_on_the_experiments_degradation_and_reference(monkeypatch, tiny_dataset, name):
    from fsrlib.methods import isr_train

    class Stop(Exception):
        pass

    seen = []

    def capture(train, model, profile, **kwargs):
        seen.append((model, profile, kwargs))
        raise Stop

    monkeypatch.setattr(isr_train, "trained_upscaler", capture)
    budget = MethodSettings(ratios=(1.0, 1 / 9), degradation="antialias", reference="original", pixel_profile="paper",
                          seed=4)
    with pytest.raises(Stop):
        get_method(name).run(FoldContext(test=tiny_dataset, training_set=tiny_dataset, query_index=np.arange(1),
                                         queries={}, settings=budget))
    ((model, profile, kwargs),) = seen
    assert (model, profile) == (name, "paper")
    assert kwargs["degradation"] == "antialias" and kwargs["reference"] == "original" and kwargs["seed"] == 4


def test_the_methods_run_by_default_are_marked_in_the_registry(registry):
    from fsrlib.methods.registry import default_methods

    assert default_methods() == ("raw", "ridge", "mlp", "cnn_baseline", "fsrgan", "fsrgan_residual")

    @register_method("mine", summary="a reader's method, run by default", default=True)
    def mine(ctx: FoldContext) -> dict:
        return {r: ctx.queries[r] for r in ctx.settings.ratios}

    assert default_methods()[-1] == "mine"


def test_a_generator_variant_is_one_call_and_its_changes_are_the_registrys(registry):
    from fsrlib.methods.registry import generator_config, generator_methods, register_generator
    from fsrlib.methods.train import TrainConfig

    register_generator("fsrgan_r4", {"loss": "gan", "r": 4.0}, summary="as fsrgan with r = 4")
    assert generator_methods()[-1] == "fsrgan_r4" and "critic_iters" in get_method("fsrgan_r4").reads
    settings = MethodSettings(steps=50, critic_iters=2, seed=3)
    assert generator_config("fsrgan_r4", settings) == TrainConfig(loss="gan", r=4.0, steps=50, critic_iters=2, seed=3)
    # a field TrainConfig does not have is refused when the variant is registered, not when it first trains
    with pytest.raises(TypeError, match="rr"):
        register_generator("typo", {"rr": 4.0}, summary="a misspelt field")
    assert "typo" not in METHODS
    # a method that is not a generator has no generator config
    with pytest.raises(KeyError, match="not a generator method; known: cnn_baseline"):
        generator_config("raw", settings)


def test_every_feature_method_runs_on_the_experiments_degradation_and_reference(monkeypatch, tmp_path):
    """Issue 27: each method, trained or not, gets the features of the run's degradation and reference (training
    pairs and queries alike). The extraction is replaced by random features that record what was asked for."""
    from fsrlib import experiment

    asked = []

    def fake_extract(ds, split, ratios, **kwargs):
        asked.append((split, kwargs["degradation"], kwargs["reference"]))
        n = len(ds.split_items(split))
        rng = np.random.default_rng(len(asked))
        return {r: rng.normal(size=(n, 32)).astype(np.float32) for r in ratios}

    monkeypatch.setattr(experiment, "extract_features", fake_extract)
    features = [m for m, v in METHODS.items() if v.input == "features"]
    cfg = ExperimentConfig(ratios=(1 / 4, 1 / 16), methods=tuple(features), epochs=1, steps=2, critic_iters=1,
                           degradation="antialias", reference="original", cache_dir=str(tmp_path),
                           data_dir=str(tmp_path / "datasets" / "mini-v1"))
    result = run(cfg, progress=False)
    assert {split for split, *_ in asked} >= {"db", "query", "train"}  # the training pairs were extracted too
    assert {(d, r) for _, d, r in asked} == {("antialias", "original")}
    scored = result.table[result.table["metric"] == "mAP"]
    assert set(scored["method"]) == {"hr", *features}
    assert not scored["value"].isna().any()


def test_a_pixel_method_gets_its_queries_on_the_experiments_recipe(registry, monkeypatch, tmp_path):
    """A pixel method asks its context for query features (ctx.pixel_queries) and names only what it changes: the
    run's backbone, degradation, reference, device and cache come with them, and it cannot override them."""
    from fsrlib import experiment
    from fsrlib.features import extract

    asked = []

    def fake_extract(ds, split, ratios, **kwargs):
        asked.append((split, tuple(ratios), kwargs))
        rng = np.random.default_rng(len(asked))
        return {r: rng.normal(size=(len(ds.split_items(split)), 32)).astype(np.float32) for r in ratios}

    monkeypatch.setattr(experiment, "extract_features", fake_extract)
    monkeypatch.setattr(extract, "extract_features", fake_extract)
    marker = object()

    @register_method("sharpen", input="pixels", trained=False, summary="a pretend ISR network, at 1/16 only")
    def sharpen(ctx: FoldContext) -> dict:
        return ctx.pixel_queries([1 / 16], upscaler=marker)

    cfg = ExperimentConfig(ratios=(1 / 4, 1 / 16), methods=("raw", "sharpen"), degradation="antialias",
                           reference="original", cache_dir=str(tmp_path),
                           data_dir=str(tmp_path / "datasets" / "mini-v1"))
    result = run(cfg, progress=False)
    ((split, ratios, kwargs),) = [a for a in asked if a[2].get("upscaler") is marker]
    assert (split, ratios) == ("query", (1 / 16,))
    assert (kwargs["backbone"], kwargs["degradation"], kwargs["reference"]) == \
        ("efficientnet_lite0", "antialias", "original")
    assert kwargs["cache_dir"] == str(tmp_path)
    scored = result.table[(result.table["metric"] == "mAP") & (result.table["method"] == "sharpen")]
    assert list(scored["ratio"]) == [1 / 16] and not scored["value"].isna().any()
    # the run's recipe is not the method's to change
    ctx = FoldContext(test=None, training_set=None, query_index=np.arange(2), queries={},
                      settings=MethodSettings(ratios=(1 / 16,)))
    with pytest.raises(TypeError, match="degradation"):
        ctx.pixel_queries(degradation="uniform")

