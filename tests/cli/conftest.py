"""A database made by `scopay init`, for the command-line tests."""

import pytest
from typer.testing import CliRunner

from scopay.cli.main import app


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "cli.db"
    result = CliRunner().invoke(app, ["init", "--db", str(path)])
    assert result.exit_code == 0, result.output
    return path
