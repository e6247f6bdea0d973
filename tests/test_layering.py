"""The architecture holds: the domain imports only the standard library and itself, and the
layers point inward (entry points -> engine -> domain). import-linter checks pyproject's
contracts."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken" in result.stdout


def test_domain_modules_import_only_the_standard_library_and_the_domain():
    allowed_roots = set(sys.stdlib_module_names) | {"scopay"}
    for path in sorted((ROOT / "src" / "scopay" / "domain").glob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from"):
                module = words[1]
                assert module.split(".")[0] in allowed_roots, f"{path.name}: {line}"
                if module.startswith("scopay"):
                    assert module.startswith("scopay.domain"), f"{path.name}: {line}"
