"""The bundled model's card is rendered from a packaged template, and a retrain keeps the measured skill."""

from __future__ import annotations

from importlib import resources

from kronos_model.train_default import SKILL_HEADING, render_model_card, write_model_card


def _records() -> tuple[dict, dict, dict]:
    epochs = [{"epoch": 1, "step": 10, "train_loss": 0.5, "val_loss": 0.25}, {"epoch": 2, "step": 20,
              "train_loss": 0.4, "val_loss": None}]  # fmt: skip
    tok = {"steps": 123, "config": {"batch_size": 64, "lr": 0.001}, "epochs": epochs}
    pred = {
        "steps": 456, "config": {"batch_size": 32, "lr": 0.0005}, "epochs": epochs, "device": "cuda:0",
        "cutoff": "2013-06-03T00:00:00", "data_fingerprint": "ab" * 32, "seed": 7, "versions": {"torch": "9.9"},
        "model_config": {"s1_bits": 6, "s2_bits": 6},
        "data": [{"name": "sp500", "bars": 4000, "train_first_bar": "1999-01-04T00:00", "train_last_bar":
                  "2013-05-01T00:00", "val_first_bar": "2013-06-03T00:00", "val_last_bar": "2014-12-31T00:00"}],
    }  # fmt: skip
    summary = {"params_millions": 1.234, "command": "python -m kronos_model.train_default --device cuda",
               "wall_seconds": 35.4, "threads": 3, "tokenizer_val_mse": 0.0441, "predictor_val_ce": 3.21}  # fmt: skip
    return tok, pred, summary


def test_template_ships_as_package_data():
    text = (resources.files("kronos_model") / "templates" / "model_card.md").read_text()
    assert (
        "${wall_seconds}" in text and "2088" not in text
    )  # the run's own numbers, no hard-coded measurement


def test_card_is_filled_from_the_records():
    text = render_model_card(*_records())
    assert "$" not in text.replace("$$", "")
    assert "1.23M-parameter" in text and "took 35 s on device `cuda:0` with 3 torch threads" in text
    assert "| sp500 | 4000 | 1999-01-04 .. 2013-05-01 | 2013-06-03 .. 2014-12-31 |" in text
    assert "| 1 | 10 | 0.5000 | 0.2500 |" in text and "| 2 | 20 | 0.4000 | - |" in text
    assert "uniform guessing would be 4.16" in text  # (ln 2^6 + ln 2^6) / 2
    assert "123 AdamW steps of batch\n  64" in text and "_Not measured yet._" in text


def test_a_retrain_keeps_the_measured_skill_section(tmp_path):
    tok, pred, summary = _records()
    measured = f"{SKILL_HEADING}\n\nCRPS 0.0121 vs 0.0099 for GARCH(1,1) (kronos-bt evaluate ...).\n"
    (tmp_path / "README.md").write_text(f"# old card\n\n{measured}\n## Limits\n\nold\n")
    text = write_model_card(tmp_path, tok, pred, summary).read_text()
    assert "CRPS 0.0121 vs 0.0099" in text and "_Not measured yet._" not in text and "old card" not in text
