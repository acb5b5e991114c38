"""The command line refuses bad arguments before any work, and the device check it shares with the library."""
import pytest
import torch

import fsrlib.__main__ as cli
from fsrlib.devices import available_devices, resolve_device


class Reached(Exception):
    """Raised by the stand-in for the experiment: the arguments were accepted."""


@pytest.fixture
def no_work(monkeypatch):
    """Replace the experiment so a test fails if the CLI starts working on bad arguments."""
    seen = {}

    def fake_run(cfg, seeds=None, progress=True):
        seen["cfg"] = cfg
        raise Reached

    monkeypatch.setattr(cli, "run", fake_run)
    return seen


def refused(args, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["experiment", *args])
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
])
def test_bad_arguments_are_refused_before_any_work(no_work, capsys, args, message):
    import re

    err = refused(args, capsys)
    assert re.search(message, err), err
    assert "cfg" not in no_work


def test_all_problems_are_listed_at_once(no_work, capsys):
    err = refused(["--out", "a.xlsx", "--device", "gpu", "--methods", "magic"], capsys)
    assert "nothing was run" in err and "--out a.xlsx" in err and "--device" in err and "magic" in err


def test_cuda_without_a_gpu_is_refused_up_front(no_work, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = refused(["--device", "cuda"], capsys)
    assert "asks for a CUDA GPU, but torch sees none" in err and "Use device 'cpu'" in err


def test_good_arguments_reach_the_experiment(no_work):
    with pytest.raises(Reached):
        cli.main(["experiment", "--ratios", "1/4", "0.0625", "--out", "t.csv", "--out", "t.json", "--epochs", "0",
                  "--dataset", "mini+flickr100k", "--degradation", "antialias"])
    cfg = no_work["cfg"]
    assert cfg.ratios == (0.25, 0.0625) and cfg.epochs == 0 and cfg.degradation == "antialias"


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
