"""``augment experiment``'s options come from the grid configs and the presets."""

import dataclasses

from click.testing import CliRunner

from augment.cli import main
from augment.downstream.presets import PRESETS


def test_the_help_shows_every_grid_option_with_the_presets_values():
    text = " ".join(CliRunner().invoke(main, ["experiment", "--help"], terminal_width=400).output.split())
    for preset in PRESETS.values():
        for f in preset.grid.option_fields():
            assert f"--{f.name.replace('_', '-')}" in text, f.name
        assert preset.about in text
    steps = {name: p.grid.classifier_steps for name, p in PRESETS.items()}
    assert f"quick: {steps['quick']}" in text and f"full, longtail-gpu: {steps['full']}" in text
    assert "longtail presets: erm, balanced," in text


def test_a_preset_changed_in_the_config_is_what_the_option_defaults_to(monkeypatch, tmp_path):
    import augment.downstream.runner as runner

    seen = {}
    monkeypatch.setattr(runner, "run_grid", lambda grid, out, device, **kwargs: seen.update(grid=grid) or out)
    preset = PRESETS["quick"]
    monkeypatch.setitem(PRESETS, "quick", preset._replace(grid=dataclasses.replace(preset.grid, classifier_steps=7)))
    result = CliRunner().invoke(main, ["experiment", "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert seen["grid"].classifier_steps == 7
    result = CliRunner().invoke(main, ["experiment", "--out", str(tmp_path / "x"), "--device", "cpu",
                                       "--methods", "none,classical", "--n-per-class", "10,all"])
    assert result.exit_code == 0, result.output
    assert seen["grid"].methods == ("none", "classical") and seen["grid"].n_per_class == (10, None)
