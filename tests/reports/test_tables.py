"""A result's budget in words: what a table row says about how much training it had."""

from __future__ import annotations

from stvfm.reports.tables import budget_words


def trained(**fields) -> dict:
    return {"model": "stvfm", "epochs": 1, "stop_reason": "time cap", "seconds_per_epoch": 680.0,
            "settings": {"limit_train_batches": 300}, **fields}


def test_a_partial_epoch_is_a_share_of_one_epoch_never_a_time_per_epoch():
    words = budget_words(trained(train_steps=17, batches_per_epoch=383))
    assert words == "17 training steps, about 4% of one epoch (time cap): not converged"
    assert "680" not in words


def test_whole_epochs_give_their_time_and_why_they_stopped():
    full = trained(epochs=5, stop_reason="epoch cap", seconds_per_epoch=1305.3, train_steps=1915, batches_per_epoch=383,
                   settings={"limit_train_batches": 1.0})
    assert budget_words(full) == "5 epochs, 1305 s each (epoch cap)"
    assert budget_words({**full, "stop_reason": "early stop"}) == "5 epochs, 1305 s each (early stop)"
    assert budget_words({**full, "stop_reason": "time cap"}) == "5 epochs, 1305 s each (time cap): not converged"
    # a batch limit at least one epoch long is whole epochs
    assert budget_words({**full, "settings": {"limit_train_batches": 400}}).startswith("5 epochs, 1305 s each")
    assert budget_words({**full, "epochs": 1}) == "1 epoch, 1305 s (epoch cap)"  # one epoch, said as one


def test_limited_epochs_say_their_batches_and_records_without_step_counts_still_read():
    assert budget_words(trained(epochs=3, stop_reason="epoch cap")) == "3 epochs of 300 batches each (epoch cap)"
    assert budget_words(trained(epochs=2, stop_reason="epoch cap", settings={"limit_train_batches": 0.25})) == \
        "2 epochs of 25% of the batches each (epoch cap)"
    assert budget_words(trained(epochs=2, stop_reason="epoch cap", settings={"limit_train_batches": 1})) == \
        "2 epochs of 1 batch each (epoch cap)"


def test_closed_form_models_say_so():
    assert budget_words({"model": "ha-week", "fit_seconds": 0.02}) == "closed form"
    assert budget_words({"model": "ha-week", "epochs": 0, "stop_reason": "not trained"}) == "closed form"


def test_a_fitted_model_says_how_it_was_fitted():
    from stvfm.models.registry import get_model_entry

    assert budget_words({"model": "arima", "stop_reason": "not trained", "fitted_by": "maximum likelihood per cell"}) \
        == "maximum likelihood per cell"
    assert get_model_entry("arima").cls.fitted_by == "maximum likelihood per cell"
    assert get_model_entry("ha-week").cls.fitted_by == "closed form"
