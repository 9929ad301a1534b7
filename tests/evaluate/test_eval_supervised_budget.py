"""`biolatent evaluate` gives the supervised baseline the pre-training's step budget and records its choices."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_evaluate_records_the_supervised_budget_rule_and_each_runs_choice(run_cli, tiny_config, tmp_path):
    run = tmp_path / "run"
    assert run_cli("pretrain", tiny_config("counts", "vae", epochs=1), "--out", run, "--quiet").code == 0
    result = run_cli("evaluate", run, "--label", "cell_type", "--fractions", "1.0", "--seeds", "1")
    assert result.code == 0, result.err
    block = json.loads((run / "evaluate" / "cell_type" / "evaluate.json").read_text())["supervised"]
    # 120 cells in batches of 32 for 1 epoch: 4 optimizer steps, the rule's budget
    assert block["max_steps"] == block["pretraining_steps"] == 4 and block["max_steps_source"] == "pretraining_steps"
    assert "1 epochs x 4 batches of 120 samples" in block["rule"]
    assert block["lr_grid"] == pytest.approx([3e-4, 1e-3, 3e-3]) and "validation" in block["selection"]
    assert block["runs"] and all(r["max_steps"] == 4 and r["lr"] in block["lr_grid"] for r in block["runs"])
    assert all(len(r["lr_grid"]) == 3 for r in block["runs"] if r["n_validation"])
    assert run_cli("report", run).code == 0
    assert "Supervised baseline: at most 4 optimizer steps" in (run / "report.html").read_text()
