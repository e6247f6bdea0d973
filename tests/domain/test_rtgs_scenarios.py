"""RTGS behaviour told as scenario files (tests/domain/scenarios/*.scn)."""

from pathlib import Path

import pytest

from scopay.sim.scenario import ScenarioError, run_scenario

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.scn"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path):
    run_scenario(path.read_text(encoding="utf-8"))


def test_a_false_expectation_fails_and_names_its_line():
    with pytest.raises(ScenarioError, match="line 4"):
        run_scenario("participant A accounts CNY\nparticipant B accounts CNY\n"
                     "fund A CNY 10.00\npay P1 A -> B CNY 50.00 settled\n")
