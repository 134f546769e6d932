"""Shared plumbing of the CLI: error handling, logging set-up and progress bars."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from robust_compress.errors import RecipeError, RobustCompressError, UserError

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def guarded(func: Callable) -> Callable:
    """Run a CLI command; turn the package's errors into a message and an exit code.

    User errors exit with 2 and run-time failures with 1, each with one message and no
    traceback. Ctrl-C exits with 130.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RecipeError as exc:
            for line in exc.messages:
                console.print(line, markup=False, highlight=False)
            console.print(f"{len(exc.messages)} error(s) in the recipe.", style="red")
            sys.exit(exc.exit_code)
        except RobustCompressError as exc:
            kind = "error" if isinstance(exc, UserError) else "failed"
            console.print(f"{kind}: {exc}", markup=False, highlight=False, style="red")
            sys.exit(getattr(exc, "exit_code", 1))
        except KeyboardInterrupt:
            console.print(
                "interrupted: files already written are complete (a run keeps its last "
                "checkpoint; continue it with --resume).",
                style="yellow",
            )
            sys.exit(130)

    return wrapper


def setup_logging(quiet: bool = False, logfile: str | None = None) -> None:
    """Log INFO to stderr (WARNING when quiet) and, optionally, DEBUG to a file."""
    root = logging.getLogger("robust_compress")
    root.setLevel(logging.DEBUG)
    root.handlers.clear()
    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(logging.WARNING if quiet else logging.INFO)
    stream.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(stream)
    if logfile:
        handler = logging.FileHandler(logfile)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root.addHandler(handler)


class Bars:
    """Progress bars with ETA, one task per phase; silent when ``quiet``."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            disable=quiet,
        )

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """Yield ``advance(info="")`` for a task of ``total`` steps."""
        task_id = self.progress.add_task(description, total=total, info="")

        def advance(info: str = "", n: int = 1) -> None:
            self.progress.update(task_id, advance=n, info=info)

        yield advance
        self.progress.update(task_id, completed=total)

    def __enter__(self) -> Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
