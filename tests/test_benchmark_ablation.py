"""The time-to-accuracy benchmark's ablation runs: each is the fast preset with exactly
one option set back to the simplenn preset's value (the script itself trains for
minutes; only what it would run is checked here)."""
import os
import sys

import pytest

from newtoncnn.solver_presets import PRESETS

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "asv_bench"))
tta = pytest.importorskip("time_to_accuracy")


@pytest.mark.parametrize("run", sorted(tta.ABLATIONS))
def test_each_ablation_switches_one_option_of_the_fast_preset_back(run):
    changes = tta.ABLATIONS[run]
    fast, simplenn = PRESETS["fast"], PRESETS["simplenn"]
    assert changes and all(key in fast for key in changes)
    for key, value in changes.items():
        assert value == simplenn[key] != fast[key], key


def test_the_ablations_cover_every_option_the_fast_preset_changes():
    changed = {k for k in PRESETS["fast"] if PRESETS["fast"][k] != PRESETS["simplenn"][k]}
    covered = {k for changes in tta.ABLATIONS.values() for k in changes}
    assert covered == changed


def test_ablation_stands_for_the_fast_no_runs_in_the_run_list(monkeypatch):
    seen = []
    monkeypatch.setattr(tta, "Problem", lambda data_dir, seed, loss: seed)
    monkeypatch.setattr(tta, "run_newton", lambda problem, log, run, budget: seen.append(run))
    monkeypatch.setattr(tta, "Log", lambda path, append: None)
    monkeypatch.setattr(tta, "table", lambda rows: "")
    monkeypatch.setattr(tta.newtoncnn, "set_num_threads", lambda n: None)
    log = os.devnull
    assert tta.main(["--runs", "fast", "ablation", "--log", log]) == 0
    assert seen == ["fast", *tta.ABLATIONS]
