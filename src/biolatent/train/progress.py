"""The training progress bar, with 1-based epochs of the whole run: "Epoch 3/3" on the last of 3 epochs.

Lightning's bar counts from 0 ("Epoch 2/2" for 3 epochs) and, on a resumed run, from the trainer's own start.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


def epoch_label(current_epoch: int, epoch_offset: int = 0, total_epochs: int | None = None) -> str:
    """``current_epoch`` (0-based, of this trainer) -> "Epoch k/n" of the run (epochs done before a resume count)."""
    label = f"Epoch {epoch_offset + current_epoch + 1}"
    return label if total_epochs is None else f"{label}/{total_epochs}"


class EpochProgressBar(RichProgressBar):
    """Lightning's rich bar with ``epoch_label`` as the description of the training task."""

    def __init__(self, epoch_offset: int = 0, total_epochs: int | None = None) -> None:
        super().__init__()
        self.epoch_offset = epoch_offset
        self.total_epochs = total_epochs

    def _get_train_description(self, current_epoch: int) -> str:  # the one hook rich's bar has for this text
        return epoch_label(current_epoch, self.epoch_offset, self.total_epochs)
