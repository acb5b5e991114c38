"""The command line refuses bad arguments before any work, and the device check it shares with the library."""
import argparse
import os
import re
import shutil

import pandas as pd
import pytest
import torch

import fsrlib.__main__ as commands
from fsrlib.cli import build_parser
from fsrlib.devices import available_devices, resolve_device
from fsrlib.experiment import ExperimentResult


class Reached(Exception):
    """Raised by the stand-in for the experiment: the arguments were accepted."""


@pytest.fixture
def no_run(monkeypatch):
    """Replace the experiment so a test fails if the CLI starts working on bad arguments."""
    seen = {}

    def fake_run(cfg, seeds=None, progress=True):
        seen["cfg"] = cfg
        raise Reached

    monkeypatch.setattr(commands, "run", fake_run)
    return seen


@pytest.fixture
def no_work(no_run, monkeypatch):
    """As ``no_run``, and no dataset is read either (the protocol check before the run loads the collections)."""
    monkeypatch.setattr(commands, "protocol_problem", lambda cfg: None)
    return no_run


def refused(args, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        commands.main(["experiment", *args])
    assert exit_info.value.code == 2  # argparse's usage error
    return capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--ratios", "0"], r"ratio must be an area ratio in \(0, 1\]"),  # crashed in ratio_label before
    (["--ratios", "2"], r"a ratio above 1 would enlarge"),  # failed after the database was extracted
    (["--ratios", "1/4", "1e-9"], r"smallest ratio for this size is 1/50176"),
    (["--ratios", "quarter"], r"a ratio is a number or fraction like 1/16"),
    (["--out", "table.txt"], r"--out table.txt: the table is saved as .csv or .json"),  # failed after extraction
    (["--device", "gpu"], r"'gpu' is not a device name torch knows"),  # was accepted
    (["--methods", "raw", "magic"], r"unknown magic; known: raw"),
    (["--dataset", "imagenet"], r"--dataset imagenet: unknown dataset"),
    (["--dataset", "paris6k+flickr1m"], r"unknown dataset"),
    (["--train-dataset", "pariss6k"], r"--train-dataset pariss6k: unknown dataset"),
    (["--backbone", "resnet"], r"--backbone resnet: unknown"),
    (["--epochs", "-1"], r"must be at least 0"),
    (["--critic-iters", "0"], r"must be at least 1"),
    # issue 28: silent nonsense and work lost after the run, refused before it
    (["--ratios", "1/16", "1/16"], r"--ratios: ratio listed more than once: 1/16 \(2 times\)"),  # hr rows 3 times
    (["--ratios", "1/16", "0.0625"], r"1/16 \(2 times\).*list each ratio once"),
    (["--ratios", "nan"], r"a ratio is a number or fraction like 1/16, not 'nan'"),
    (["--ratios", "1/0"], r"not '1/0'"),
    (["--methods", "raw", "raw"], r"--methods: methods lists 'raw' more than once"),  # crashed in worse_than_raw
    (["--seeds", "1", "1"], r"--seeds: seeds lists 1 more than once"),
    (["--seeds", "-1"], r"must be at least 0, got -1"),  # failed in the ISR trainer's generator
    (["--seed", "-3"], r"must be at least 0, got -3"),
    (["--seed", "3", "--seeds", "1", "2"], r"--seed 3: ignored when --seeds is given"),
    (["--folds", "1", "--protocol", "group_disjoint"], r"must be at least 2"),
    (["--folds", "5"], r"--folds 5: only --protocol group_disjoint reads it, and the protocol is paper"),
    (["--folds", "5", "--protocol", "cross_dataset", "--train-on", "paris6k"], r"the protocol is cross_dataset"),
    (["--train-on", "paris6k"], r"--train-on: only --protocol cross_dataset reads it, and the protocol is paper"),
    (["--protocol", "group_disjoint", "--train-on", "mini"], r"the protocol is group_disjoint"),
    (["--protocol", "group_disjoint", "--train-dataset", "mini"], r"contradicts --protocol group_disjoint"),
    (["--protocol", "paper", "--train-dataset", "mini"], r"contradicts --protocol paper"),
    (["--protocol", "cross_dataset", "--train-dataset", "mini", "--train-on", "paris6k"],
     r"--train-dataset and --train-on both name training collections"),
    (["--train-data-dir", "elsewhere"], r"--train-data-dir elsewhere: it is --train-dataset's folder"),
    (["--train-data-dirs", "elsewhere"], r"more folders than --train-on collections"),
    (["--protocol", "cross_dataset", "--train-on", "mini", "mini"], r"mini \(folder -\) is listed more than once"),
    (["--protocol", "cross_dataset"], r"--protocol cross_dataset needs --train-on"),
    (["--student", "crops_per_image"], r"'crops_per_image' is not FIELD=VALUE"),
    (["--student", "trainable_blocks=99"], r"need 0 <= trainable_blocks <= 16"),
    (["--student", "seed=1"], r"run-owned"),
    (["--unlabeled-count", "-2"], r"--unlabeled-count"),
])
def test_bad_arguments_are_refused_before_any_work(no_work, capsys, args, message):
    err = refused(args, capsys)
    assert re.search(message, err), err
    assert "cfg" not in no_work


def test_out_that_cannot_be_written_is_refused_before_the_run(no_work, capsys, tmp_path):
    """Issue 28: --out a folder, under a file, or given twice failed (or overwrote) only after the whole run."""
    (tmp_path / "table.csv").mkdir()
    (tmp_path / "plain").write_text("not a folder")
    err = refused(["--out", str(tmp_path / "table.csv"), "--out", str(tmp_path / "plain" / "sub" / "t.csv"),
                   "--out", str(tmp_path / "t.json"), "--out", str(tmp_path / "." / "t.json")], capsys)
    assert f"--out {tmp_path / 'table.csv'}: is a folder; name a file in it" in err
    assert f"{tmp_path / 'plain'} is a file, so the folder {tmp_path / 'plain' / 'sub'} cannot be made" in err
    assert "the same file as --out" in err and "cfg" not in no_work


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_without_permission_is_refused(no_work, capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    err = refused(["--out", str(locked / "new" / "t.csv")], capsys)
    assert f"no permission to write in {locked}" in err


def test_older_train_dataset_means_cross_dataset(no_work):
    """--train-dataset is turned into the one spelling, so the run and its report name the same protocol."""
    with pytest.raises(Reached):
        commands.main(["experiment", "--train-dataset", "mini", "--train-data-dir", "elsewhere", "--methods", "ridge"])
    cfg = no_work["cfg"]
    assert (cfg.protocol, cfg.train_on, cfg.train_data_dirs, cfg.train_dataset) == \
        ("cross_dataset", ("mini",), ("elsewhere",), None)


def test_a_byte_copy_of_the_test_collection_is_not_cross_dataset(no_run, capsys, mini_dataset, tmp_path):
    """Issue 28: training on a copy of the test folder ran and was reported as cross-dataset; bytes, not folder
    names, decide, and the refusal comes before any feature is extracted."""
    copy = tmp_path / "mini-copy"
    shutil.copytree(mini_dataset.root, copy)
    err = refused(["--dataset", "mini", "--data-dir", str(mini_dataset.root), "--protocol", "cross_dataset",
                   "--train-on", "mini", "--train-data-dirs", str(copy), "--methods", "raw", "ridge"], capsys)
    assert re.search(r"168 training image\(s\) of mini \(168 images of mini-copy\) have the same bytes as "
                     r"images of the test collection mini", err), err
    assert "e.g. " in err and "; ..." in err and "train on another collection" in err and "cfg" not in no_run


def test_protocol_and_dataset_problems_are_refused_before_the_run(no_run, capsys, mini_dataset, tmp_path):
    """Found by building the folds and loading the collections first, not by a traceback after extraction."""
    err = refused(["--dataset", "mini", "--data-dir", str(mini_dataset.root), "--protocol", "group_disjoint",
                   "--folds", "50", "--methods", "ridge"], capsys)
    assert "nothing was run" in err and "group-disjoint folds need 2 <= k <= 14" in err
    err = refused(["--dataset", "holidays", "--data-dir", str(tmp_path / "absent"), "--methods", "raw"], capsys)
    assert "nothing was run" in err and str(tmp_path / "absent") in err and "cfg" not in no_run


def test_extract_refuses_repeated_ratios(capsys):
    with pytest.raises(SystemExit) as exit_info:
        commands.main(["extract", "--dataset", "mini", "--split", "db", "--ratios", "1/4", "0.25"])
    assert exit_info.value.code == 2 and "1/4 (2 times)" in capsys.readouterr().err


@pytest.mark.parametrize("given, loader_value", [([], None), (["--ratios-on-device", "on"], True),
                                                 (["--ratios-on-device", "off"], False)])
def test_extract_passes_where_the_ratios_are_made(monkeypatch, given, loader_value):
    import fsrlib.features.distributed as distributed

    seen = {}

    def fake_extract(dataset, split, ratios, recipe, loader, **kwargs):
        seen["loader"] = loader
        raise Reached

    monkeypatch.setattr(distributed, "load_dataset", lambda name, data_dir: name)
    monkeypatch.setattr(distributed, "extract_sharded", fake_extract)
    with pytest.raises(Reached):
        commands.main(["extract", "--dataset", "mini", "--split", "db", *given])
    assert seen["loader"].ratios_on_device is loader_value


def test_extract_refuses_an_unknown_ratios_on_device(capsys):
    with pytest.raises(SystemExit) as exit_info:
        commands.main(["extract", "--dataset", "mini", "--split", "db", "--ratios-on-device", "yes"])
    assert exit_info.value.code == 2 and "'auto', 'on', 'off'" in capsys.readouterr().err


def test_tables_are_saved_before_the_report(monkeypatch, tmp_path):
    """Issue 28: a report that failed after the run lost the results; now they are on disk first."""
    table = pd.DataFrame({"dataset": "mini", "method": ["hr", "raw"], "ratio": 0.25, "ratio_label": "1/4",
                          "seed": 0, "metric": "mAP", "value": [0.9, 0.5]})
    monkeypatch.setattr(commands, "protocol_problem", lambda cfg: None)
    monkeypatch.setattr(commands, "run", lambda cfg, seeds=None, progress=True: ExperimentResult(table, pd.DataFrame(), []))

    def broken_report(*args):
        raise RuntimeError("a report failed")

    monkeypatch.setattr(commands, "report", broken_report)
    with pytest.raises(RuntimeError, match="a report failed"):
        commands.main(["experiment", "--methods", "raw", "--ratios", "1/4", "--out", str(tmp_path / "r" / "t.csv")])
    assert pd.read_csv(tmp_path / "r" / "t.csv")["value"].tolist() == [0.9, 0.5]


def test_a_table_that_cannot_be_saved_does_not_stop_the_others(monkeypatch, tmp_path, capsys):
    table = pd.DataFrame({"dataset": "mini", "backbone": "b", "protocol": "paper", "method": ["hr", "raw"],
                          "ratio": 0.25, "ratio_label": "1/4", "seed": 0, "metric": "mAP", "value": [0.9, 0.5]})
    monkeypatch.setattr(commands, "protocol_problem", lambda cfg: None)
    monkeypatch.setattr(commands, "run", lambda cfg, seeds=None, progress=True: ExperimentResult(table, pd.DataFrame(), []))
    real_save = commands.save_table

    def save(table, path):
        if str(path).endswith(".json"):
            raise OSError(f"[Errno 28] No space left on device: {path!r}")
        return real_save(table, path)

    monkeypatch.setattr(commands, "save_table", save)
    code = commands.main(["experiment", "--methods", "raw", "--ratios", "1/4", "--out", str(tmp_path / "t.json"),
                     "--out", str(tmp_path / "t.csv")])
    out, err = capsys.readouterr()
    assert code == 1 and (tmp_path / "t.csv").is_file() and "could not save the table at" in err
    assert "mAP on mini" in out  # the report still shows the numbers


def test_all_problems_are_listed_at_once(no_work, capsys):
    err = refused(["--out", "a.xlsx", "--device", "gpu", "--methods", "magic"], capsys)
    assert "nothing was run" in err and "--out a.xlsx" in err and "--device" in err and "magic" in err


def test_cuda_without_a_gpu_is_refused_up_front(no_work, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = refused(["--device", "cuda"], capsys)
    assert "asks for a CUDA GPU, but torch sees none" in err and "Use device 'cpu'" in err


def test_good_arguments_reach_the_experiment(no_work):
    with pytest.raises(Reached):
        commands.main(["experiment", "--ratios", "1/4", "0.0625", "--out", "t.csv", "--out", "t.json", "--epochs", "0",
                  "--dataset", "mini+flickr100k", "--degradation", "antialias"])
    cfg = no_work["cfg"]
    assert cfg.ratios == (0.25, 0.0625) and cfg.epochs == 0 and cfg.degradation == "antialias"
    with pytest.raises(Reached):
        commands.main(["experiment", "--methods", "raw", "student", "--unlabeled-count", "500", "--student",
                  "crops_per_image=1", "degradations=('uniform','antialias')"])
    cfg = no_work["cfg"]
    assert cfg.unlabeled_count == 500
    assert cfg.student_changes == {"crops_per_image": 1, "degradations": ("uniform", "antialias")}


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == "cpu" and resolve_device(torch.device("cpu")) == "cpu"
    assert available_devices()[0] == "cpu"
    with pytest.raises(ValueError, match="'gpu' is not a device name torch knows.*Available here: cpu"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="fsrlib runs on cpu, cuda, mps, not 'meta'"):
        resolve_device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cuda") == "cuda"
    with pytest.raises(ValueError, match=r"this machine has 2 CUDA GPU\(s\). Available here: cpu, cuda:0, cuda:1"):
        resolve_device("cuda:2")


def test_mps_is_checked(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="Apple's Metal GPU"):
        resolve_device("mps")


def subcommands() -> dict:
    """The real parser's subcommands, by name."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_every_option_has_help_and_shows_its_default(monkeypatch):
    """Issue 25: options without help (--dataset, --ratios...) and defaults shown nowhere."""
    monkeypatch.setenv("COLUMNS", "200")
    assert set(subcommands()) == {"experiment", "extract", "fetch"}
    for name, parser in subcommands().items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            shown = formatter._expand_help(action) if action.help else ""
            assert shown.strip(), f"{name} {action.option_strings[0]} has no help"
            if action.nargs != 0 and not action.required:  # flags and required options have no default to show
                assert "default:" in shown, f"{name} {action.option_strings[0]}: {shown!r} shows no default"
            if action.default not in (None, False, []):
                assert "default:" in shown, f"{name} {action.option_strings[0]}: {shown!r} shows no default"
        assert "default:" in " ".join(parser.format_help().split())


def test_experiment_help_shows_the_defaults(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        commands.main(["experiment", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    assert "(default: 1/4 1/9 1/16 1/25 1/36 1/49 1/64)" in out and "(default: cpu)" in out  # --ratios, --profile
    assert "(default: mini)" in out and "95% intervals" in out and "%%" not in out
    with pytest.raises(SystemExit):
        commands.main(["extract", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "$FSRLIB_CACHE" in out and "(default: 256)" in out and "(default: 1)" in out


def test_auto_device_picks_cuda_then_mps_then_cpu(monkeypatch):
    """Issue 25: a chapter opened on a Colab GPU runtime must use the GPU with no edit, so "auto" is the default."""
    import fsrlib.devices as devices
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device(" AUTO ") == "cpu"
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert resolve_device("auto") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and devices.concrete_device("auto") == "cuda"
    assert devices.concrete_device("cuda:3") == "cuda:3"  # only "auto" is replaced: a stored config reads as saved


def test_configs_store_the_device_auto_stands_for():
    """Every config with a device field stores the concrete name, so cache keys and checkpoints never say "auto"."""
    from fsrlib.experiment import ExperimentConfig
    from fsrlib.features.loader import LoaderConfig
    from fsrlib.methods.baselines import MLPConfig
    from fsrlib.methods.isr_train import ISRTrainConfig
    from fsrlib.methods.registry import MethodSettings
    from fsrlib.methods.student import StudentConfig
    from fsrlib.methods.train import TrainConfig
    here = resolve_device("auto")
    for config in (MLPConfig, ExperimentConfig, LoaderConfig, ISRTrainConfig, MethodSettings, StudentConfig,
                   TrainConfig):
        assert config(device="auto").device == here, config.__name__
    with pytest.raises(ValueError, match="device='gpu'.*not a device name"):
        ExperimentConfig(device="gpu")


def test_cli_device_defaults_to_auto(no_work):
    parser = build_parser()
    assert parser.parse_args(["experiment"]).device == "auto"
    assert parser.parse_args(["extract", "--dataset", "mini", "--split", "db"]).device == "auto"
    with pytest.raises(Reached):
        commands.main(["experiment"])
    assert no_work["cfg"].device == resolve_device("auto")


def test_fetch_is_an_installed_command_and_the_script_is_the_same(monkeypatch, tmp_path, capsys):
    """Issue 25: a pip install has no data_scripts/; `fsrlib fetch` is the command every message names."""
    import importlib.util
    from pathlib import Path

    import tomllib

    import fsrlib.data.download

    root = Path(__file__).resolve().parents[1]
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]["fsrlib"] == "fsrlib.__main__:main"
    fetched = []
    monkeypatch.setattr(fsrlib.data.download, "fetch_benchmark",
                        lambda name, root, **kw: fetched.append((name, str(root), kw)) or Path(root) / name)
    assert commands.main(["fetch", "paris6k", "holidays", "--data-dir", str(tmp_path), "--quiet"]) == 0
    assert [f[0] for f in fetched] == ["paris6k", "holidays"] and fetched[0][2]["progress"] is False
    assert f"[fetch] holidays: ready in {tmp_path / 'holidays'}" in capsys.readouterr().out
    spec = importlib.util.spec_from_file_location("fetch_script", root / "data_scripts" / "fetch.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["oxford5k", "--data-dir", str(tmp_path)]) == 0 and fetched[-1][0] == "oxford5k"
    with pytest.raises(SystemExit) as refused_exit:
        commands.main(["fetch", "imagenet"])
    assert refused_exit.value.code == 2 and "invalid choice: 'imagenet'" in capsys.readouterr().err


def test_no_message_points_to_a_script_a_pip_install_lacks():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in [*(root / "fsrlib").rglob("*.py"), *(root / "book").glob("*.ipynb")]:
        assert "data_scripts/" not in path.read_text(), f"{path} names data_scripts/, which a pip install lacks: " \
            "say fsrlib fetch"
