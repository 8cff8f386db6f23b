"""Encoders: the CIFAR-10 ResNets and their checkpoint formats, torchvision networks, and cutting any of them into
a body that reads the network's 1-channel L input."""
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
import torchvision.models as tvm
from fastai.vision.all import has_pool_type, create_body
from fastai.vision.learner import _get_first_layer

__all__ = ['resnet20_cifar', 'CifarResNet', 'encoder_body', 'encoder_classifier', 'adapt_first_conv', 'KNOWN_ARCHS', 'IMAGENET_STATS',
           'CIFAR_STATS']

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CHENYAOFO_URL = 'https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/cifar10_resnet20-4118986f.pt'


# ---------------------------------------------------------------------------------------------- CIFAR ResNet-20
class _ShortcutA(nn.Module):
    "Option-A shortcut (He et al. 2016, CIFAR): subsample and zero-pad the channels; no parameters."
    def __init__(self, planes): super().__init__(); self.pad = planes // 4
    def forward(self, x): return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class _BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride=1, option='A'):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != planes:
            self.shortcut = (_ShortcutA(planes) if option == 'A' else
                             nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    "ResNet-20/32/44/56 for 32 px CIFAR images (3 stages of 16/32/64 channels), as published by akamaster and chenyaofo."
    def __init__(self, depth=20, num_classes=10, option='A', stats=IMAGENET_STATS):
        super().__init__()
        if (depth - 2) % 6: raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.stats = stats                      # the normalisation its weights expect
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        cin, layers = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(_BasicBlock(cin, planes, s, option)); cin = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)): nn.init.kaiming_normal_(m.weight)

    def body(self): return nn.Sequential(self.conv1, self.bn1, self.relu, self.layer1, self.layer2, self.layer3)

    def forward(self, x):
        return self.linear(self.pool(self.body()(x)).flatten(1))


def _load_strict(model, state, source):
    "load_state_dict that names the missing and unexpected keys when the checkpoint is for another model."
    res = model.load_state_dict(state, strict=False)
    shape_err = [k for k, v in state.items() if k in model.state_dict() and model.state_dict()[k].shape != v.shape]
    if res.missing_keys or res.unexpected_keys or shape_err:
        raise ValueError(f"{source} does not fit {type(model).__name__}: missing keys {res.missing_keys[:8]}"
                         f"{'...' if len(res.missing_keys) > 8 else ''}, unexpected keys {res.unexpected_keys[:8]}"
                         f"{'...' if len(res.unexpected_keys) > 8 else ''}, wrong shapes {shape_err[:8]}")


def _cifar_key(k):
    "akamaster (`module.` prefix, `linear`) and chenyaofo (`downsample`, `fc`) names -> CifarResNet's names."
    k = k.removeprefix('module.').replace('.downsample.', '.shortcut.')
    return 'linear.' + k[len('fc.'):] if k.startswith('fc.') else k


def resnet20_cifar(weights=None, depth=20):
    """CIFAR-10 ResNet-20. `weights`: None (random init), a checkpoint path in akamaster's format
    (`{'state_dict': {'module.conv1.weight': ...}}`, option-A shortcuts) or chenyaofo's (plain state dict,
    1x1-conv shortcuts), or 'chenyaofo' to download chenyaofo's published weights."""
    if weights is None: return CifarResNet(depth)
    if weights == 'chenyaofo':
        state = torch.hub.load_state_dict_from_url(CHENYAOFO_URL, map_location='cpu', progress=True)
    else:
        if not Path(weights).is_file(): raise FileNotFoundError(f"checkpoint {weights} not found")
        state = torch.load(weights, map_location='cpu', weights_only=False)
    if isinstance(state, dict) and 'state_dict' in state: state = state['state_dict']
    if not isinstance(state, dict): raise ValueError(f"{weights} does not hold a state dict")
    state = {_cifar_key(k): v for k, v in state.items()}
    option_b = any('.shortcut.' in k for k in state)
    model = CifarResNet(depth, option='B' if option_b else 'A', stats=CIFAR_STATS if option_b else IMAGENET_STATS)
    _load_strict(model, state, f"checkpoint {weights}")
    return model


# ---------------------------------------------------------------------------------------------- encoders
KNOWN_ARCHS = {'resnet18': tvm.resnet18, 'resnet34': tvm.resnet34, 'resnet50': tvm.resnet50,
               'mobilenet_v2': tvm.mobilenet_v2, 'resnet20_cifar': resnet20_cifar}


def adapt_first_conv(conv: nn.Conv2d, stats=IMAGENET_STATS, pretrained=True) -> nn.Conv2d:
    """An RGB first convolution turned into one that reads the network's L input (L/50-1, about 2g-1 for a grey
    level g). The RGB weights are folded, with the normalisation they were trained with, so that on a grey image
    the new layer gives what the old one gave on the same image in RGB: w' = sum_c w_c/(2 s_c),
    b' = b + sum w_c (1/2 - m_c)/s_c. Nothing is thrown away; `pretrained=False` gives a fresh layer."""
    if conv.in_channels != 3: raise ValueError(f"expected a 3-channel first convolution, got {conv.in_channels}")
    new = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups,
                    bias=pretrained or conv.bias is not None, padding_mode=conv.padding_mode)
    if pretrained:
        with torch.no_grad():
            m, s = (torch.tensor(v, dtype=conv.weight.dtype).view(1, 3, 1, 1) for v in stats)
            w = conv.weight
            new.weight.copy_((w / (2 * s)).sum(1, keepdim=True))
            b = (w * (0.5 - m) / s).sum((1, 2, 3))
            new.bias.copy_(b + (conv.bias if conv.bias is not None else 0))
    return new


def _build(arch, pretrained, weights):
    "A full network from `arch` (name, builder or module) with its weights."
    if isinstance(arch, str):
        if arch not in KNOWN_ARCHS:
            raise ValueError(f"unknown arch {arch!r}; known: {', '.join(KNOWN_ARCHS)} (or pass a torchvision "
                             f"model builder or an nn.Module)")
        arch = KNOWN_ARCHS[arch]
    if isinstance(arch, nn.Module): return arch, True
    if not callable(arch): raise TypeError(f"arch must be a name, a model builder or an nn.Module, got {arch!r}")
    if arch is resnet20_cifar:
        return resnet20_cifar(weights if weights is not None else ('chenyaofo' if pretrained else None)), \
            bool(weights is not None or pretrained)
    model = arch(weights='DEFAULT' if pretrained and weights is None else None)
    if weights is not None:
        if not Path(weights).is_file(): raise FileNotFoundError(f"encoder weights {weights} not found")
        state = torch.load(weights, map_location='cpu', weights_only=True)
        _load_strict(model, state.get('state_dict', state) if isinstance(state, dict) else state,
                     f"encoder weights {weights}")
    return model, bool(pretrained or weights is not None)


def encoder_classifier(arch='resnet18', pretrained=True, weights=None):
    """The whole pretrained network the encoder comes from (an RGB classifier, for `SemanticLoss`), or None when it
    has no weights (random init)."""
    model, has_weights = _build(arch, pretrained, weights)
    return model.eval() if has_weights else None


# fastai cuts before the last pooling layer; these have none where the body ends, so they name their cut
_CUTS = {CifarResNet: lambda m: m.body(),
         tvm.MobileNetV2: lambda m: nn.Sequential(*list(m.features.children())[:-1])}   # before the 1280-ch 1x1 conv


def encoder_body(arch='resnet18', pretrained=True, weights=None) -> nn.Sequential:
    """The convolutional body of `arch`, reading 1 channel (L), cut by fastai's `create_body` (before the last
    pooling layer: torchvision ResNets and most others), or at a known cut (CIFAR ResNets; MobileNetV2's
    `features[:-1]`, since keeping its 1280-channel 1x1 conv makes the U-Net's decoder explode). An nn.Sequential
    without pooling is taken whole. The first convolution is then folded to read L (`adapt_first_conv`) instead of
    fastai's `n_in=1` weight sum, which would ignore the normalisation the pretrained weights expect."""
    model, has_weights = _build(arch, pretrained, weights)
    stats = getattr(model, 'stats', IMAGENET_STATS)
    cut = next((c for t, c in _CUTS.items() if isinstance(model, t)), None)
    if cut is None and isinstance(model, nn.Sequential) and not any(has_pool_type(c) for c in model.children()):
        cut = lambda m: m
    if cut is None and not any(has_pool_type(c) for c in model.children()):
        raise ValueError(f"cannot find where to cut {type(model).__name__}: pass an nn.Sequential body")
    body = create_body(model, n_in=3, pretrained=has_weights, cut=cut)
    if not any(isinstance(m, nn.Conv2d) for m in body.modules()):
        raise ValueError(f"{type(model).__name__} has no Conv2d to read the L channel")
    conv, parent, name = _get_first_layer(body)
    if not isinstance(conv, nn.Conv2d): raise ValueError(f"the first layer of {type(model).__name__} is not a Conv2d")
    if conv.in_channels == 3: setattr(parent, name, adapt_first_conv(conv, stats, has_weights))
    elif conv.in_channels != 1: raise ValueError(f"first convolution takes {conv.in_channels} channels; need 3 or 1")
    return body
