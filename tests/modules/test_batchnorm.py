"""AsymmetricBatchNorm: batch statistics on the anchor side in training, running statistics elsewhere."""
from __future__ import annotations

import pytest
import torch

from embedkit.modules import AsymmetricBatchNorm


def test_anchor_side_uses_batch_statistics_and_updates_running_ones():
    torch.manual_seed(0)
    bn = AsymmetricBatchNorm(4, momentum=0.5).train()
    x = torch.randn(16, 4) * 3 + 2
    out = bn(x, "anchor")
    torch.testing.assert_close(out.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(bn.running_mean, 0.5 * x.mean(0))


def test_positive_side_ignores_its_batch_and_leaves_statistics_alone():
    torch.manual_seed(0)
    bn = AsymmetricBatchNorm(4).train()
    bn(torch.randn(16, 4) + 1, "anchor")
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    x = torch.randn(8, 4)
    alone = bn(x[:1], "positive")
    together = bn(x, "positive")[:1]
    torch.testing.assert_close(alone, together)  # a row does not depend on the rest of its batch
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    torch.testing.assert_close(together, (x[:1] - mean) / torch.sqrt(var + bn.eps))


def test_eval_mode_uses_running_statistics_on_both_sides():
    torch.manual_seed(0)
    bn = AsymmetricBatchNorm(4).train()
    bn(torch.randn(32, 4) * 2, "anchor")
    bn.eval()
    x = torch.randn(8, 4)
    torch.testing.assert_close(bn(x, "anchor"), bn(x, "positive"))
    torch.testing.assert_close(bn(x[:2], "anchor"), bn(x, "anchor")[:2])
    with pytest.raises(ValueError, match="side must be"):
        bn(x, "query")


def test_calibrate_sets_running_statistics_so_both_sides_agree_from_the_start():
    torch.manual_seed(0)
    bn = AsymmetricBatchNorm(4).train()
    x = torch.randn(256, 4) * 3 + 2
    bn.calibrate(x)
    torch.testing.assert_close(bn.running_mean, x.mean(0))
    torch.testing.assert_close(bn.running_var, x.var(0))
    # the calibration batch itself: the positive side (running statistics) now matches the
    # anchor side (batch statistics); uncalibrated, they differ by the data's mean and scale
    torch.testing.assert_close(bn(x, "positive"), bn(x, "anchor"), atol=1e-2, rtol=5e-3)  # unbiased vs biased variance
    with pytest.raises(ValueError, match="calibrate needs"):
        bn.calibrate(torch.randn(8, 3))
