"""What the benchmark scripts share: their options, and the folder those that write
databases write them in. Not a benchmark itself (tests/test_bench_scripts.py runs every
bench/*.py but this)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def parser(doc: str, quick: str, writes: str | None = None) -> argparse.ArgumentParser:
    """A script's options: its docstring's first paragraph as description, --quick (`quick`
    says what it then measures) and, for a script that writes `writes` (its databases),
    --dir, the folder in which a temporary one is made and then removed (scratch)."""
    options = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    options.add_argument("--quick", action="store_true", help=quick)
    if writes is not None:
        options.add_argument("--dir", type=Path, default=None,
                             help=f"folder for {writes} (a temporary folder inside it, removed "
                                  "after the run)")
    return options


def scratch(args: argparse.Namespace, prefix: str) -> tempfile.TemporaryDirectory:
    """The temporary folder a run writes its databases in, inside --dir if given."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir=args.dir)
