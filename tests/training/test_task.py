"""The training task tells a model how far training has got, in epochs, before each step."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from stvfm.models import ForecastShape, create_model
from stvfm.testing import make_batch
from stvfm.training.task import ForecastTask


def test_each_training_step_sees_the_epochs_trained_so_far():
    shape = ForecastShape(history=3, horizon=2, channels=1, height=4, width=4, slots_per_day=24)
    model = create_model("predrnn", shape, layers=1, hidden=4, kernel=3, scheduled_sampling_epochs=2)
    seen = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            seen.append((module.model.epochs_trained, module.model._true_frame_probability()))

    batches = DataLoader([make_batch(shape, batch_size=2, seed=index) for index in range(4)], batch_size=None)
    trainer = L.Trainer(max_epochs=2, callbacks=[Spy()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(ForecastTask(model, lambda values: values), train_dataloaders=batches)
    assert [epochs for epochs, _ in seen] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert [probability for _, probability in seen] == [1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]
