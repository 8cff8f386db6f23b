"""Models: encoders (torchvision ResNets, MobileNetV2, the CIFAR-10 ResNet-20), the colour U-Net and the
conditional PatchGAN discriminator."""
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
import torchvision.models as tvm
from fastai.vision.all import DynamicUnet, Learner, Adam, params, has_pool_type, cut_model
from .precision import ColourLearner

__all__ = ['resnet20_cifar', 'CifarResNet', 'colour_learner', 'colour_unet', 'ColourUnet', 'encoder_body',
           'adapt_first_conv', 'check_colouriser', 'PatchDiscriminator', 'patch_layers_for', 'KNOWN_ARCHS', 'IMAGENET_STATS']

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


def _first_conv(module):
    "(parent, name, conv) of the first Conv2d in `module`."
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d): return module, name, child
        found = _first_conv(child)
        if found: return found
    return None


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


def encoder_body(arch='resnet18', pretrained=True, weights=None) -> nn.Sequential:
    """The convolutional body of `arch`, reading 1 channel (L). Known cuts: torchvision ResNets (before the pool),
    MobileNetV2 (`features[:-1]`, before its 1280-channel 1x1 conv), CIFAR ResNets; any other model is cut before
    its last pooling layer, as fastai's `create_body` does."""
    model, has_weights = _build(arch, pretrained, weights)
    stats = getattr(model, 'stats', IMAGENET_STATS)
    if isinstance(model, CifarResNet): body = model.body()
    elif isinstance(model, tvm.ResNet): body = nn.Sequential(*list(model.children())[:-2])
    elif isinstance(model, tvm.MobileNetV2): body = nn.Sequential(*list(model.features.children())[:-1])
    elif isinstance(model, nn.Sequential) and not any(has_pool_type(c) for c in model.children()): body = model
    else:
        ll = list(enumerate(model.children()))
        cut = next((i for i, o in reversed(ll) if has_pool_type(o)), None)
        if cut is None: raise ValueError(f"cannot find where to cut {type(model).__name__}: pass an nn.Sequential body")
        body = cut_model(model, cut)
    found = _first_conv(body)
    if found is None: raise ValueError(f"{type(model).__name__} has no Conv2d to read the L channel")
    parent, name, conv = found
    if conv.in_channels == 3: setattr(parent, name, adapt_first_conv(conv, stats, has_weights))
    elif conv.in_channels != 1: raise ValueError(f"first convolution takes {conv.in_channels} channels; need 3 or 1")
    return body


def as_plain(t: torch.Tensor) -> torch.Tensor:
    "Drop fastai's tensor subclass: its __torch_function__ dispatch on every op costs time inside the nets."
    return t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t


def _plain_input(x, channels_last):
    # plain tensors inside, and channels-last convolutions, 25-40 % faster on CPU (bench/RESULTS.md)
    x = as_plain(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


class ColourUnet(DynamicUnet):
    """fastai's DynamicUnet taking L (1 channel) and returning ab (2 channels); remembers the size it was built for.
    `channels_last`: keep weights and activations in channels-last memory layout (faster; same maths)."""
    def __init__(self, encoder, img_size, n_out=2, y_range=(-1., 1.), channels_last=True, **kwargs):
        super().__init__(encoder, n_out, img_size, y_range=y_range, **kwargs)
        self.img_size, self.n_out, self.channels_last = tuple(img_size), n_out, channels_last
        if channels_last: self.to(memory_format=torch.channels_last)

    def forward(self, x): return super().forward(_plain_input(x, getattr(self, 'channels_last', False)))

    def _load_from_state_dict(self, state, prefix, *args):
        super()._load_from_state_dict(state, prefix, *args)
        # A GAN checkpoint loaded without a GANColourizer attached: its discriminator is not ours to load.
        unexpected = args[-2]
        gan = [k for k in unexpected if k.startswith(prefix + 'gan_colourizer.')]
        if gan:
            for k in gan: unexpected.remove(k)
            warnings.warn("this checkpoint holds a GANColourizer discriminator; add the callback before "
                          "`learn.load` to restore it too (the generator loaded fine)")


def colour_unet(arch='resnet18', img_size=(64, 64), pretrained=True, weights=None, **unet_kwargs) -> ColourUnet:
    if isinstance(img_size, int): img_size = (img_size, img_size)
    return ColourUnet(encoder_body(arch, pretrained, weights), img_size, **unet_kwargs)


def _unet_splitter(m): return [params(m[0]), params(m[1:])]


def colour_learner(dls, arch='resnet18', pretrained=True, metrics=None, weights=None, loss_func=None,
                   opt_func=Adam, img_size=None, **unet_kwargs) -> Learner:
    """A Learner whose model is a colour U-Net on `arch` (L in, ab out in [-1, 1]) trained with L1 loss on ab.
    `arch`: a name in KNOWN_ARCHS, a torchvision builder (e.g. `resnet18`) or an nn.Module (e.g.
    `resnet20_cifar(path)`) or an already built `ColourUnet`; `weights`: a state dict file for the encoder. The whole net trains (nothing
    frozen); the splitter separates encoder and decoder for `learn.freeze()` or discriminative learning rates.
    Returns a `ColourLearner`: a fastai Learner whose `to_bf16()` also speeds up training on CPUs."""
    if isinstance(arch, ColourUnet): model = arch                       # an already built generator
    else:
        if img_size is None: img_size = tuple(dls.one_batch()[0].shape[-2:])
        model = colour_unet(arch, img_size, pretrained, weights, **unet_kwargs)
    return ColourLearner(dls, model, loss_func=loss_func or nn.L1Loss(), metrics=metrics, opt_func=opt_func,
                         splitter=_unet_splitter)


def check_colouriser(G, size):
    "Raise a clear ValueError unless `G` maps an L batch (N,1,H,W) to ab (N,2,H,W)."
    was_training = G.training
    try:
        with torch.no_grad():
            p = next(G.parameters())
            out = G.eval()(torch.zeros(2, 1, *size, device=p.device, dtype=p.dtype))
    except Exception as e:
        raise ValueError(f"not a colouriser: the model must map L (N,1,H,W) to ab (N,2,H,W), and it fails on "
                         f"L input: {e}") from e
    finally: G.train(was_training)
    if out.ndim != 4 or out.shape[1] != 2:
        raise ValueError(f"not a colouriser: the model must output 2 channels (ab); this one outputs shape "
                         f"{tuple(out.shape)} for a {tuple(size)} L image")


# ---------------------------------------------------------------------------------------------- discriminator
def patch_layers_for(size: int) -> int:
    """Down-sampling layers that keep PatchGAN's output a patch map: the most (up to pix2pix's 3) that leave
    a map of at least 6x6 (32 px -> 2, 64 px -> 3, 96 px -> 3)."""
    return int(max(1, min(3, math.floor(math.log2(max(size, 16) / 8)))))


class PatchDiscriminator(nn.Sequential):
    """Conditional PatchGAN (pix2pix): input L concatenated with ab (3 channels), output one logit per patch.
    C64 (no norm) - C128 - C256 (stride 2) ... - C(stride 1) - C1, kernel 4, LeakyReLU 0.2.
    `n_layers` stride-2 layers; None fits them to `img_size` (see `patch_layers_for`, pix2pix's 3 otherwise)."""
    def __init__(self, n_in=3, nf=64, n_layers=None, norm='batch', spectral=False, img_size=None, channels_last=True):
        if n_layers is None: n_layers = patch_layers_for(min(_pair(img_size))) if img_size else 3
        if n_layers < 1: raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if norm not in ('batch', 'instance', None, 'none'): raise ValueError(f"unknown norm {norm!r}")
        sn = nn.utils.spectral_norm if spectral else (lambda m: m)
        def block(ci, co, stride, use_norm=True):
            layers = [sn(nn.Conv2d(ci, co, 4, stride, 1, bias=not (use_norm and norm in ('batch', 'instance'))))]
            if use_norm and norm == 'batch': layers.append(nn.BatchNorm2d(co))
            if use_norm and norm == 'instance': layers.append(nn.InstanceNorm2d(co, affine=True))
            return layers + [nn.LeakyReLU(0.2, True)]
        layers, c = block(n_in, nf, 2, use_norm=False), nf
        for i in range(1, n_layers + 1):
            co = nf * min(2 ** i, 8)
            layers += block(c, co, 2 if i < n_layers else 1); c = co
        layers.append(sn(nn.Conv2d(c, 1, 4, 1, 1)))
        super().__init__(*layers)
        self.n_layers, self.channels_last = n_layers, channels_last
        if channels_last: self.to(memory_format=torch.channels_last)

    def forward(self, x): return super().forward(_plain_input(x, getattr(self, 'channels_last', False)))


def _pair(s): return (s, s) if isinstance(s, int) else tuple(s)
