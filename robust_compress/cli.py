"""The ``robust-compress`` command line: thin commands over the public API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from robust_compress.cli_common import Bars, guarded, out, setup_logging

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Make PyTorch models small and adversarially robust, export them to ONNX Runtime, "
    "and audit the result.",
)

Opt = typer.Option


@app.callback()
def _root() -> None:
    """Make PyTorch models small and adversarially robust, and prove it."""


@app.command()
@guarded
def train(
    model: Annotated[str, Opt(help="Model spec: builtin:NAME, torchvision:NAME, py:mod:fn.")] = (
        "builtin:cnn_small"
    ),
    data: Annotated[str, Opt(help="Dataset name.")] = "fashion-mnist",
    data_root: Annotated[Path | None, Opt(help="Folder with the dataset's files.")] = None,
    method: Annotated[str, Opt(help="natural, fgsm_rs or pgd.")] = "pgd",
    epochs: Annotated[int, Opt(min=1)] = 5,
    steps: Annotated[int, Opt(min=1, help="PGD steps during training.")] = 5,
    eps: Annotated[float, Opt(min=0.0, help="L-inf radius in pixel space.")] = 0.1,
    lr: Annotated[float, Opt(min=0.0)] = 0.1,
    batch_size: Annotated[int, Opt(min=1)] = 128,
    train_subset: Annotated[int | None, Opt(min=1)] = None,
    test_subset: Annotated[int | None, Opt(min=1)] = None,
    eval_steps: Annotated[int, Opt(min=1, help="Steps of the PGD evaluation.")] = 20,
    seed: int = 0,
    save: Annotated[Path | None, Opt(help="Save the trained model here.")] = None,
    force: Annotated[bool, Opt(help="Overwrite --save if it exists.")] = False,
    quiet: bool = False,
) -> None:
    """Train a model (naturally or adversarially) and report clean and PGD accuracy."""
    from robust_compress.quick import TrainJob, run_train_job

    setup_logging(quiet)
    job = TrainJob(
        model,
        data,
        data_root,
        method,
        epochs,
        steps,
        eps,
        lr,
        batch_size,
        train_subset,
        test_subset,
        eval_steps,
        seed,
        save,
        force,
    )
    start = time.perf_counter()
    with Bars(quiet) as bars:
        result = run_train_job(job, bars)
    out.print(
        f"clean accuracy {result['clean']:.2%} on {result['n_test']} test images; "
        f"PGD-{eval_steps} accuracy {result['robust']:.2%} (L-inf eps {eps}, step 0.01, random "
        f"start) on {result['n_test']}; elapsed {time.perf_counter() - start:.0f} s"
    )


def main() -> None:
    """Entry point of the ``robust-compress`` console script."""
    app()


if __name__ == "__main__":
    main()
