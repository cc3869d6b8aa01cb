"""The CIFAR ResNet of He et al. 2016 §4.2 (6n+2 layers, option-A shortcuts).

Written from the description in ``../shared/weights/cifar10_resnet/PROVENANCE.md`` so that
akamaster/pytorch_resnet_cifar10's state_dicts load strictly: the key names (``conv1``,
``bn1``, ``layerK.i.{conv1,bn1,conv2,bn2}``, ``linear``) are the checkpoint's. The stem's
ReLU is a module of its own (``stem_act``, no parameters) so it can be tapped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, inp: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if (stride != 1 or inp != planes) else 0  # option A: subsample + zero channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.pad else x
        return F.relu(out + short)


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 20, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110 …), not {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.stem_act = nn.ReLU()
        widths, inp = (16, 32, 64), 16
        for s, (w, stride) in enumerate(zip(widths, (1, 2, 2), strict=True), start=1):
            blocks = [BasicBlock(inp if i == 0 else w, w, stride if i == 0 else 1) for i in range(n)]
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
            inp = w
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():  # the source repo's init: Kaiming-normal convs and linear
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_act(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))
