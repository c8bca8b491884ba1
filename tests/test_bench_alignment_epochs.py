"""The alignment benchmark's precise-BN evaluation: a copy whose BatchNorm statistics are averaged
over all the given images, the trained network left as it was."""

from __future__ import annotations

import torch
from torch import nn

from bench.alignment_epochs import with_precise_bn


def test_precise_bn_averages_over_all_images_and_leaves_the_original_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
    images = torch.randn(1500, 3, 8, 8) * 2 + 1
    before = {k: v.clone() for k, v in net.state_dict().items()}

    copy = with_precise_bn(net, images, lambda x: x, batch=500)

    with torch.no_grad():
        conv = net[0](images)
    expected_mean = conv.mean(dim=(0, 2, 3))
    torch.testing.assert_close(copy[1].running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    # the unbiased batch variances, averaged over batches (what BatchNorm's cumulative mode keeps)
    per_batch = [conv[s : s + 500].var(dim=(0, 2, 3), unbiased=True) for s in (0, 500, 1000)]
    torch.testing.assert_close(copy[1].running_var, sum(per_batch) / 3, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not net.training
