"""The benchmark scripts run as `python bench/NAME.py`, which puts bench/ first on sys.path:
a script named like a standard-library module would shadow it for every import made while
the benchmark runs (bench/queue.py once broke bench/api.py's HTTP client this way)."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_no_benchmark_script_shadows_a_standard_library_module():
    scripts = sorted(path.stem for path in BENCH.glob("*.py"))
    assert scripts, "the benchmark scripts are where this test expects them"
    shadowing = [name for name in scripts if name in sys.stdlib_module_names]
    assert shadowing == [], f"rename bench/{shadowing[0]}.py: it hides the standard module"
