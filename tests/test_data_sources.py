"""Data sources beyond Fashion-MNIST: ImageFolder PNGs, CIFAR pickles, py: datasets, streaming."""

from __future__ import annotations

import pickle
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from robust_compress.data.datasets import StreamData, TensorData, load_dataset, open_data
from robust_compress.errors import UserError
from robust_compress.recipe import parse_recipe

STAGES = """
stages:
  - train: {method: pgd, epochs: 1, adversary: {attack: pgd, steps: 2}}
  - prune: {ratio: 0.3, finetune_epochs: 1}
  - quantize: {weight_bits: 8, act_bits: 8, qat_epochs: 1}
  - export: {fp32: true, int8: true}
  - audit: {samples: 16, attacks: [fgsm, pgd], pgd_steps: 3, eps_sweep: [], sanity_checks: false}
"""


def _write_png(path, image: torch.Tensor) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)


def _class_image(label: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """A uint8 RGB image whose colour says its class, plus noise."""
    image = torch.randint(0, 60, (3, h, w), generator=gen, dtype=torch.uint8)
    image[label % 3] += 150
    return image


def make_imagefolder(root, per_class=(12, 4), sizes=((36, 40), (40, 36))):
    gen = torch.Generator().manual_seed(0)
    for split, n in zip(("train", "val"), per_class, strict=True):
        for label, name in enumerate(("cat", "dog", "owl")):
            for i in range(n):
                h, w = sizes[i % len(sizes)]
                _write_png(root / split / name / f"{i}.png", _class_image(label, h, w, gen))
    return root


def make_cifar10(root, per_batch=20, test=30):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = test if name == "test_batch" else per_batch
        labels = [int(v) for v in rng.integers(0, 10, n)]
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return folder


def _run(recipe_text: str, out):
    from robust_compress.engine.session import Session

    return Session(parse_recipe(recipe_text), out=out).run()


def test_imagefolder_png_recipe_end_to_end_streamed(tmp_path):
    root = make_imagefolder(tmp_path / "pets")
    recipe = (
        textwrap.dedent(f"""
        name: folder
        model: {{spec: builtin:cnn_tiny}}
        data:
          name: imagefolder
          root: {root}
          batch_size: 8
          stream: stream
          workers: 0
          transforms:
            train:
              - {{resize: 36}}
              - {{center_crop: 32}}
              - {{random_crop: {{size: 32, padding: 2}}}}
              - {{hflip: 1}}
            eval: [{{resize: 36}}, {{center_crop: 32}}]
        threat: {{eps: 0.03}}
        """)
        + STAGES
    )
    report = _run(recipe, tmp_path / "run")
    assert [s["kind"] for s in report["per_stage"]][-1] == "audit"
    assert report["audit"]["final"]["samples"] == 12
    assert report["per_stage"][-1]["params"] < report["per_stage"][0]["params"]
    assert (tmp_path / "run" / "model.int8.onnx").is_file()
    test = open_data(parse_recipe(recipe).data, "test")
    assert isinstance(test, StreamData) and test.input_shape == (3, 32, 32) and len(test) == 12
    assert test.num_classes == 3


def test_cifar10_pickle_recipe_end_to_end(tmp_path):
    folder = make_cifar10(tmp_path / "cifar")
    train = load_dataset("cifar10", "train", root=tmp_path / "cifar")
    assert isinstance(train, TensorData) and train.x.dtype == torch.uint8
    assert train.input_shape == (3, 32, 32) and len(train) == 100
    with open(folder / "data_batch_1", "rb") as f:
        first = pickle.load(f)
    assert torch.equal(train.x[0].flatten(), torch.from_numpy(first[b"data"][0]))
    assert train.y[0] == first[b"labels"][0]
    recipe = (
        textwrap.dedent(f"""
        name: cifar
        model: {{spec: builtin:cnn_tiny}}
        data:
          name: cifar10
          root: {tmp_path / "cifar"}
          batch_size: 25
          holdout: 20
          transforms: {{train: [{{random_crop: {{size: 32, padding: 4}}}}, {{hflip: 0.5}}]}}
        threat: {{eps: 0.03}}
        """)
        + STAGES
    )
    report = _run(recipe, tmp_path / "run")
    assert report["per_stage"][-1]["params"] < report["per_stage"][0]["params"]
    assert (tmp_path / "run" / "model.int8.onnx").is_file()


def test_cifar_pickle_that_names_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(pickle.dumps({}))

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(UserError, match="refused global builtins.print"):
        load_dataset("cifar10", "train", root=tmp_path)


PLUGIN = '''
import torch
from torch import nn
from torch.utils.data import Dataset


class Shapes(Dataset):
    """Float RGB images in [0, 1]: the class decides which channel is bright."""

    classes = ["r", "g", "b"]

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 3
        self.x = torch.rand(n, 3, 24, 24, generator=g) * 0.4
        for c in range(3):
            self.x[self.y == c, c] += 0.5

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def datasets(n_train=48, n_test=24):
    return Shapes(n_train, 0), Shapes(n_test, 1)


def make_model(num_classes):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )
'''


def test_py_dataset_and_py_model_with_weights_from_a_state_dict(tmp_path, monkeypatch):
    from robust_compress.engine.session import Session

    (tmp_path / "my_data_mod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_data_mod

    weights = tmp_path / "weights.pt"
    torch.manual_seed(123)
    torch.save(my_data_mod.make_model(3).state_dict(), weights)
    recipe = parse_recipe(
        textwrap.dedent(f"""
        name: mine
        model: {{spec: "py:my_data_mod:make_model", weights: {weights}}}
        data: {{name: "py:my_data_mod:datasets", options: {{n_train: 40}}, batch_size: 8}}
        threat: {{eps: 0.03}}
        stages:
          - train: {{method: pgd, epochs: 1, adversary: {{attack: pgd, steps: 2}}}}
          - audit: {{samples: 16, attacks: [fgsm], eps_sweep: []}}
        """)
    )
    session = Session(recipe, out=tmp_path / "run")
    model = session.setup()
    saved = torch.load(weights, weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert len(session.train_data) == 40 and session.num_classes == 3
    report = Session(recipe, out=tmp_path / "run2").run()
    assert report["audit"]["final"]["samples"] == 16
    sys.modules.pop("my_data_mod", None)


def test_stream_and_memory_paths_give_the_same_batches(tmp_path):
    root = make_imagefolder(tmp_path / "pets", per_class=(6, 2))
    base = f"""
        name: s
        model: {{spec: builtin:cnn_tiny}}
        data:
          name: imagefolder
          root: {root}
          stream: STREAM
          workers: 2
          transforms:
            train: [{{resize: [32, 32]}}, {{random_crop: {{size: 28, padding: 2}}}}, {{hflip: 0.5}}]
        threat: {{eps: 0.03}}
        stages: [{{train: {{method: natural, epochs: 1}}}}]
        """
    paths = {}
    for stream in ("stream", "memory"):
        data = parse_recipe(textwrap.dedent(base.replace("STREAM", stream))).data
        paths[stream] = open_data(data, "train")
    assert isinstance(paths["stream"], StreamData) and isinstance(paths["memory"], TensorData)
    sent = pickle.loads(pickle.dumps(paths["stream"].items))  # spawn/forkserver workers get this
    assert torch.equal(sent[0][0], paths["stream"].items[0][0])
    for world in (1, 2):
        a = list(
            paths["stream"].batches(5, True, seed=3, rank=world - 1, world=world, augment=True)
        )
        b = list(
            paths["memory"].batches(5, True, seed=3, rank=world - 1, world=world, augment=True)
        )
        assert len(a) == len(b) == paths["memory"].num_batches(5, world)
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert xa.shape[1:] == (3, 28, 28) and torch.equal(xa, xb) and torch.equal(ya, yb)
    plain = next(paths["memory"].batches(18, False))[0]
    augmented = next(paths["memory"].batches(18, False, augment=True))[0]
    assert not torch.equal(plain, augmented)  # the crop moves pixels


def test_images_of_different_sizes_without_a_crop_are_a_clear_error(tmp_path):
    root = make_imagefolder(tmp_path / "pets", per_class=(4, 2))
    with pytest.raises(UserError, match="differ in size .*resize and a center_crop"):
        load_dataset("imagefolder", "train", root=root)  # read into memory with 2 workers
    config = parse_recipe(
        f"name: d\nmodel: {{spec: builtin:cnn_tiny}}\ndata: {{name: imagefolder, root: {root}, "
        "stream: stream}\nthreat: {eps: 0.1}\nstages: [{train: {method: natural, epochs: 1}}]\n"
    ).data
    streamed = open_data(config, "train")
    with pytest.raises(UserError, match="differ in size .*resize and a center_crop"):
        list(streamed.batches(12))


def test_augmentation_is_drawn_from_the_seed():
    from robust_compress.data.augment import Augment

    x = torch.rand(6, 3, 8, 8)
    aug = Augment(crop=(8, 8), padding=2, flip=0.5)
    assert torch.equal(aug(x, 7), aug(x, 7))
    assert not torch.equal(aug(x, 7), aug(x, 8))
    assert aug(x, 7).shape == x.shape


@pytest.mark.parametrize(
    ("transforms", "message"),
    [
        ("{eval: [{hflip: 0.5}]}", "training augmentations"),
        ("{train: [{hflip: 0.5}, {resize: 32}]}", "comes after a random augmentation"),
        ("{train: [{resize: 32, hflip: 0.5}]}", "exactly one of"),
        ("{train: [{rotate: 10}]}", "unknown key 'rotate'"),
    ],
)
def test_bad_transforms_are_reported_at_their_line(transforms, message):
    text = f"name: t\nmodel: {{spec: builtin:cnn_tiny}}\ndata:\n  transforms: {transforms}\n"
    text += "threat: {eps: 0.1}\nstages: [{train: {method: natural, epochs: 1}}]\n"
    with pytest.raises(UserError, match=rf"<string>:4:\d+: data.transforms.*{message}"):
        parse_recipe(text)


def test_dataset_options_are_checked_when_the_recipe_loads():
    text = "name: t\nmodel: {spec: builtin:cnn_tiny}\n"
    text += "data: {name: synthetic, options: {size: 4, colour: 1}}\n"
    text += "threat: {eps: 0.1}\nstages: [{train: {method: natural, epochs: 1}}]\n"
    with pytest.raises(UserError, match=r":3:\d+: data: .*options.size.*options.colour"):
        parse_recipe(text)


def test_synthetic_options_make_rgb_images_of_any_size():
    data = load_dataset("synthetic", "test", options={"channels": 3, "size": 40, "test": 20})
    assert data.input_shape == (3, 40, 40) and len(data) == 20
    default = load_dataset("synthetic", "test")
    assert default.input_shape == (1, 28, 28) and len(default) == 256


SHRINK = [
    "args.epochs=1",
    "data.batch_size=16",
    "data.holdout=8",
    "stages.0.train.adversary.steps=1",
    "stages.1.prune.steps=1",
    "stages.1.prune.adversary.steps=1",
    "stages.2.quantize.adversary.steps=1",
    "stages.4.audit.samples=8",
    "stages.4.audit.attacks=[fgsm]",
    "stages.4.audit.eps_sweep=[]",
    "stages.4.audit.sanity_checks=false",
    "stages.4.audit.dense=false",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10-resnet18", "imagefolder-example"])
def test_shipped_data_recipes_run_on_generated_files(name, tmp_path):
    from robust_compress.engine.session import Session
    from robust_compress.recipe import load_recipe

    root = Path(__file__).resolve().parent.parent / "recipes" / f"{name}.yaml"
    if name == "cifar10-resnet18":
        make_cifar10(tmp_path / "data", per_batch=8, test=16)
        extra = ["args.finetune=1", "data.train_subset=32"]
    else:
        make_imagefolder(tmp_path / "data", per_class=(8, 4), sizes=((70, 80), (80, 70)))
        extra = ["stages.1.prune.finetune_epochs=1"]
    recipe = load_recipe(root, overrides=[f"args.root={tmp_path / 'data'}", *SHRINK, *extra])
    report = Session(recipe, out=tmp_path / "run").run()
    assert report["per_stage"][-1]["params"] < report["per_stage"][0]["params"]
    assert (tmp_path / "run" / "model.int8.onnx").is_file()


KILL_AFTER_EPOCH = textwrap.dedent("""
    import os, signal, sys
    from robust_compress.engine.hooks import Hooks
    from robust_compress.engine.session import Session
    from robust_compress.recipe import parse_recipe

    class Kill(Hooks):
        def on_batch(self, stage, epoch, batch, loss):
            if epoch == 1:  # the second epoch started: the first one is checkpointed
                os.kill(os.getpid(), signal.SIGKILL)

    session = Session(parse_recipe(sys.stdin.read()), sys.argv[1], hooks=Kill())
    session.setup()
    session.run()
""")


def test_a_streamed_run_killed_mid_stage_resumes_to_the_same_weights(tmp_path):
    import subprocess

    from robust_compress.engine.runfolder import RunFolder
    from robust_compress.engine.session import Session

    root = make_imagefolder(tmp_path / "pets", per_class=(8, 2), sizes=((32, 32),))
    recipe = textwrap.dedent(f"""
        name: resume
        model: {{spec: builtin:cnn_tiny}}
        data:
          name: imagefolder
          root: {root}
          batch_size: 8
          stream: stream
          workers: 1
          transforms: {{train: [{{random_crop: {{size: 32, padding: 4}}}}, {{hflip: 0.5}}]}}
        threat: {{eps: 0.03}}
        stages: [{{train: {{method: pgd, epochs: 2, adversary: {{attack: pgd, steps: 1}}}}}}]
        """)
    whole = Session(parse_recipe(recipe), tmp_path / "whole")
    whole.setup()
    whole.run()
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", KILL_AFTER_EPOCH, str(out)]
    proc = subprocess.run(cmd, input=recipe, text=True, capture_output=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    saved = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["stage_index"], saved["epoch"]) == (0, 1)  # resumes inside the stage
    resumed = Session(parse_recipe(recipe), RunFolder(out, resume=True))
    resumed.setup()
    resumed.run(resume=True)
    assert resumed.records and resumed.epoch == 0
    expected, got = whole.model.state_dict(), resumed.model.state_dict()
    for name, value in expected.items():
        assert torch.allclose(value.float(), got[name].float(), atol=1e-6), name
