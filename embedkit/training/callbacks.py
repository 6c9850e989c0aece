"""Stop training when the loss stops being a finite number, without saving the broken weights.

The HF Trainer by default logs the average of earlier losses in place of a NaN (``logging_nan_inf_filter``)
and keeps stepping, so a diverged run would silently overwrite good checkpoints with NaN weights.
"""
from __future__ import annotations

import math

import torch
from transformers import TrainerCallback

from embedkit.errors import EmbedkitError


class NonFiniteLossError(EmbedkitError):
    """The training loss became NaN or infinite."""


class NonFiniteLossGuard(TrainerCallback):
    """Watches every value the loss module returns (a forward hook); at the end of a step whose loss was
    not finite (on any process) it stops training and cancels that step's save and evaluation, so the
    newest checkpoint on disk is the last good one. ``check()`` then raises ``NonFiniteLossError``."""

    def __init__(self, loss_module: torch.nn.Module):
        self.bad_value: float | None = None
        self.stopped_at: int | None = None
        self.last_checkpoint_step: int | None = None
        loss_module.register_forward_hook(self._record)

    def _record(self, module, inputs, output) -> None:
        values = output.values() if isinstance(output, dict) else [output]
        for value in values:
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                number = float(value.detach())
                if not math.isfinite(number) and self.bad_value is None:
                    self.bad_value = number

    def _any_process_bad(self) -> bool:
        bad = self.bad_value is not None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([1.0 if bad else 0.0])
            if torch.distributed.get_backend() == "nccl":
                flag = flag.cuda()
            torch.distributed.all_reduce(flag)
            bad = flag.item() > 0
            if bad and self.bad_value is None:
                self.bad_value = float("nan")
        return bad

    def on_step_end(self, args, state, control, **kwargs):
        if self._any_process_bad():
            self.stopped_at = state.global_step
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last_checkpoint_step = state.global_step
        return control

    def check(self, out_dir) -> None:
        if self.stopped_at is None:
            return
        from embedkit.training.checkpoints import last_complete_checkpoint

        checkpoint = last_complete_checkpoint(out_dir)
        kept = (f"the last good checkpoint is {checkpoint}" if checkpoint
                else "no checkpoint was saved before it")
        raise NonFiniteLossError(
            f"training loss became {self.bad_value} at step {self.stopped_at}; stopped without saving. {kept}. "
            "Lower learning_rate, raise loss.temperature, or use precision fp32, then resume with --resume"
        )


class LossStateCheckpointer(TrainerCallback):
    """Saves trainable state that lives in the loss rather than the model (WhitenedCSE's projection head)
    into each checkpoint, so that ``--resume`` restores it; the trainer's checkpoints hold only the model.

    It writes at the end of a step that will be saved, before the trainer writes that checkpoint, so the
    trainer's ``trainer_state.json`` (written last) still marks a complete checkpoint."""

    FILE = "loss_state.pt"

    def __init__(self, loss_module: torch.nn.Module, out_dir):
        from pathlib import Path

        self.loss, self.out_dir = loss_module, Path(out_dir)
        shared = {name for name, _ in loss_module.named_children() if name in ("model", "guide")}
        self.keys = [k for k in loss_module.state_dict() if k.split(".", 1)[0] not in shared]

    def on_step_end(self, args, state, control, **kwargs):
        if self.keys and control.should_save and args.should_save:
            from embedkit.atomic import atomic_open

            full = self.loss.state_dict()
            with atomic_open(self.out_dir / f"checkpoint-{state.global_step}" / self.FILE, "wb") as f:
                torch.save({k: full[k] for k in self.keys}, f)
        return control

    def restore(self, checkpoint) -> None:
        from pathlib import Path

        path = Path(checkpoint) / self.FILE if checkpoint else None
        if self.keys and path is not None and path.exists():
            self.loss.load_state_dict(torch.load(path, map_location="cpu"), strict=False)
