"""Command line: ``python -m physlm`` (or ``physlm``) runs chapters, benches and the book.

physlm chapter part3_3_capacity --scale cpu   execute one chapter into book/parts/
physlm book --scale cpu [--chapters A B]       execute chapters, scorecard, HTML
physlm render                                  scorecard + HTML from stored notebooks
physlm bench NAME [ARGS...]                    run physlm.bench.NAME:main(argv)
physlm train part3_3_capacity --scale gpu      train a chapter's runs into the run cache
                                               (also under `accelerate launch -m physlm ...`)
physlm check-device                            on a CUDA machine: tests, MFU, benches, report
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import time
from collections.abc import Callable, Sequence

from physlm import book


def _scale(value: str) -> str:
    try:
        return book.check_scale(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def available_benches() -> list[str]:
    """Modules under ``physlm.bench`` (empty when the package does not exist yet)."""
    try:
        pkg = importlib.import_module("physlm.bench")
    except ModuleNotFoundError:
        return []
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def find_bench(name: str) -> Callable[[list[str]], int | None]:
    """The ``main(argv)`` of ``physlm.bench.<name>``; a ValueError lists the benches."""
    have = available_benches()
    if name not in have:
        listing = ", ".join(have) or "none yet"
        raise ValueError(
            f"bench must be one of the modules in physlm/bench ({listing}); got {name!r}"
        )
    module = importlib.import_module(f"physlm.bench.{name}")
    main = getattr(module, "main", None)
    if not callable(main):
        raise ValueError(f"physlm.bench.{name} has no main(argv) function")
    return main


def _log_cells(args: argparse.Namespace) -> None:
    if args.log_output:  # papermill streams cell output through its logger
        logging.basicConfig(level=logging.INFO, format="%(message)s")


def _cmd_chapter(args: argparse.Namespace) -> int:
    _log_cells(args)
    root = book.repo_root()
    book.check_chapter(root, args.name)
    print(f"executing notebooks/{args.name}.py at scale {args.scale}", file=sys.stderr)
    out = book.execute_chapter(args.name, args.scale, root=root, log_output=args.log_output)
    print(out.relative_to(root))
    return 0


def _render(root) -> int:
    card = book.write_scorecard(root)
    print(f"wrote {card.relative_to(root)}", file=sys.stderr)
    index = book.build_html(root)
    print(index)
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    _log_cells(args)
    root = book.repo_root()
    names = args.chapters or book.chapter_names(root)
    for name in names:
        book.check_chapter(root, name)
    failed = []
    start = time.time()  # runs trained from here on count as cold for every chapter
    for name in names:
        print(f"executing notebooks/{name}.py at scale {args.scale}", file=sys.stderr)
        try:
            book.execute_chapter(
                name, args.scale, root=root, log_output=args.log_output, build_start=start
            )
        except book.ChapterFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(
            f"error: {len(failed)} chapter(s) failed: {', '.join(failed)}; "
            "the book was not rebuilt",
            file=sys.stderr,
        )
        return 1
    return _render(root)


def _cmd_assets(args: argparse.Namespace) -> int:
    from physlm.assets import install_mathjax

    print(install_mathjax())
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    return _render(book.repo_root())


def find_trainer(chapter: str):
    """The experiments module whose CHAPTER is `chapter` (it provides train_all)."""
    import physlm.experiments as pkg

    known = {}
    for m in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"physlm.experiments.{m.name}")
        if hasattr(module, "CHAPTER"):
            known[module.CHAPTER] = module
    tiny = importlib.import_module("physlm.tiny_run")  # a check of the setup, not a chapter
    known[tiny.CHAPTER] = tiny
    if chapter not in known:
        raise ValueError(f"chapter must be one of {sorted(known)} to train; got {chapter!r}")
    return known[chapter]


def _cmd_train(args: argparse.Namespace) -> int:
    module = find_trainer(args.name)
    n = module.train_all(args.scale, seed=args.seed, workers=args.workers)
    if os.environ.get("RANK", "0") == "0":  # under `accelerate launch`: the main process only
        print(f"{n} runs of {args.name} at scale {args.scale} in the run cache", file=sys.stderr)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    try:
        bench_main = find_bench(args.name)
    except ValueError as exc:
        print(f"physlm bench: error: {exc}", file=sys.stderr)
        return 2
    # The bench's own errors propagate with their traceback: they are not usage errors.
    return int(bench_main(list(args.args)) or 0)


def _cmd_check_device(args: argparse.Namespace) -> int:
    from physlm import device_check

    try:
        return device_check.run(args)
    except device_check.NoCuda as exc:
        print(f"physlm check-device: error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="physlm", description="Run the chapters and build the Physics of LMs companion book."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    scale_help = f"one of {', '.join(book.SCALES)}"

    p = sub.add_parser("chapter", help="execute one chapter into book/parts/")
    p.add_argument("name", help="chapter source name in notebooks/, e.g. part3_3_capacity")
    p.add_argument("--scale", type=_scale, required=True, help=scale_help)
    p.add_argument("--log-output", action="store_true", help="stream cell output to stderr")
    p.set_defaults(func=_cmd_chapter)

    p = sub.add_parser("book", help="execute chapters, regenerate the scorecard, build HTML")
    p.add_argument("--scale", type=_scale, required=True, help=scale_help)
    p.add_argument("--chapters", nargs="+", metavar="NAME", help="only these chapters")
    p.add_argument("--log-output", action="store_true", help="stream cell output to stderr")
    p.set_defaults(func=_cmd_book)

    p = sub.add_parser("assets", help="install the pinned MathJax the book serves offline (npm)")
    p.set_defaults(func=_cmd_assets)

    p = sub.add_parser("render", help="scorecard + HTML from the stored notebooks (no execution)")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser(
        "train",
        help="train a chapter's runs into the run cache",
        description="Train every run of a chapter into the run cache; executing the chapter "
        "afterwards loads them instead of training.",
        epilog="On several GPUs: `accelerate launch -m physlm train CHAPTER --scale gpu` (or "
        "paper) trains each run on all processes (data parallel, the loss averaged over the "
        "whole step's tokens), then `python -m physlm chapter CHAPTER --scale gpu` executes the "
        "chapter from the filled cache. `physlm train tiny --scale smoke` trains two "
        "seconds-long runs (next-token and masked LM): a check of the setup before a long "
        "launch.",
    )
    p.add_argument("name", help="chapter name, e.g. part3_3_capacity, or tiny")
    p.add_argument("--scale", type=_scale, required=True, help=scale_help)
    p.add_argument("--seed", type=int, default=0, help="the chapter's seed parameter")
    p.add_argument("--workers", type=int, default=None, help="parallel CPU workers")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("bench", help="run a benchmark from physlm.bench")
    p.add_argument("name", help="module name in physlm/bench")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to its main(argv)")
    p.set_defaults(func=_cmd_bench)  # dispatched in main(), outside the usage-error net

    from physlm import device_check

    p = sub.add_parser(
        "check-device",
        help="on a CUDA machine: CUDA tests, bf16 MFU, benches, smoke chapters; one report",
        description=device_check.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    device_check.add_arguments(p)
    p.set_defaults(func=_cmd_check_device)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _cmd_bench(args)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, book.ChapterFailed, book.BuildFailed) as exc:
        print(f"physlm {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
