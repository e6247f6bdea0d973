"""The benchmark scripts: each runs in its quick form and ends with one JSON object, as its
docstring and docs/benchmarks.md say (a script that no longer runs reports nothing, and the
figures in the docs could no longer be reproduced).

They run as `python bench/NAME.py`, which puts bench/ first on sys.path: a script named like
a standard-library module would shadow it for every import made while the benchmark runs
(bench/queue.py once broke bench/api.py's HTTP client this way)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
# every bench/*.py but the scripts' shared module (_options.py)
SCRIPTS = sorted(path.stem for path in BENCH.glob("*.py") if not path.stem.startswith("_"))
# they write databases: into tmp_path
WITH_DIR = {"api", "bulk_floor", "bulk_growth", "ledger", "recovery", "statements"}
RUN_S_MAX = 600


def test_no_benchmark_script_shadows_a_standard_library_module():
    assert SCRIPTS, "the benchmark scripts are where this test expects them"
    shadowing = [name for name in SCRIPTS if name in sys.stdlib_module_names]
    assert shadowing == [], f"rename bench/{shadowing[0]}.py: it hides the standard module"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_runs_quick_and_ends_with_one_json_object(script, tmp_path,
                                                                 shared_data):
    environment = dict(os.environ)
    if script == "iso20022":  # the official schemas, beside the repository
        environment["SCOPAY_ISO20022_SCHEMAS"] = str(shared_data("iso20022"))
    command = [sys.executable, str(BENCH / f"{script}.py"), "--quick"]
    if script in WITH_DIR:
        command += ["--dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_S_MAX,
                          env=environment, cwd=BENCH.parent, check=False)
    assert done.returncode == 0, done.stderr[-3000:] or done.stdout[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert isinstance(json.loads(last), dict), last
    if script in WITH_DIR:
        assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
