"""The networks: the colour U-Net (generator, fastai's DynamicUnet from L to ab) and the conditional PatchGAN
discriminator."""
import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from fastai.torch_core import get_model
from fastai.vision.all import DynamicUnet
from fastai.layers import MergeLayer
from fastai.vision.models.unet import UnetBlock

from .encoders import encoder_body

__all__ = ['colour_unet', 'ColourUnet', 'ClassGuide', 'use_flip_average', 'colour_unet_of', 'check_colourizer',
           'PatchDiscriminator', 'patch_layers_for', 'as_plain']


def as_plain(t: torch.Tensor) -> torch.Tensor:
    "Drop fastai's tensor subclass: its __torch_function__ dispatch on every op costs time inside the nets."
    return t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t


def _plain_input(x, channels_last):
    # plain tensors inside, and channels-last convolutions, 25-40 % faster on CPU (bench/RESULTS.md)
    x = as_plain(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


class ClassGuide(nn.Module):
    """Global class guidance (Iizuka et al. 2016's fusion layer; ChromaGAN's class branch), placed after the U-Net's
    middle convolutions: a linear `head` reads the class logits off the spatial mean of the deepest features, and
    their softmax, mapped back to the feature channels, is added at every position, so that every pixel's colour
    can depend on what the whole image shows. The fusion starts at zero: a new guided U-Net computes what the plain
    one computes until training moves it. `ClassGuidanceLoss` reads the logits with a fastai hook on `head`."""
    def __init__(self, n_channels, n_classes):
        super().__init__()
        if n_classes < 2: raise ValueError(f"ClassGuide: n_classes must be at least 2, got {n_classes}")
        self.head, self.fuse = nn.Linear(n_channels, n_classes), nn.Linear(n_classes, n_channels)
        nn.init.zeros_(self.fuse.weight); nn.init.zeros_(self.fuse.bias)

    @property
    def n_classes(self): return self.head.out_features

    def forward(self, x): return x + self.fuse(self.head(x.mean((2, 3))).softmax(1))[:, :, None, None]


class ColourUnet(DynamicUnet):
    """fastai's DynamicUnet taking L (1 channel) and returning ab (2 channels); remembers the size it was built for.
    `channels_last`: keep weights and activations in channels-last memory layout (faster; same maths).
    Two prediction settings act in eval mode only (training, and so the loss, never sees them). They are registered
    buffers, so they travel in the `state_dict`, in `learn.save`, `learn.export` and the ONNX graph:
    `flip_average` (bool): predict the mean of ab for the image and the mirror image of ab for its mirror (test-time
    augmentation, twice the inference cost; set it with `use_flip_average`);
    `chroma_gain` (float): multiply ab by this factor, clamped to the output range (set by `calibrate_colourfulness`).
    `class_guidance`: a number of classes adds a `ClassGuide` at the end of the middle convolutions (`guide`), to be
    trained by `ClassGuidanceLoss`; the other layers keep their names, so a plain U-Net's weights load into it.
    `hints=True`: the U-Net also takes colour hints, `forward(L, hint_ab, hint_mask)` (see hints.py): a convolution
    `hint_conv` shaped like the encoder's first one reads (hint_ab, mask) and adds to that first convolution's output,
    which is the first layer of a U-Net whose input is L, hint ab and mask. It starts at zero weight, so the new
    hinted U-Net predicts exactly what the hint-free one predicts; without hints (`forward(L)`) the mask is zero.
    More zero-started convolutions add them deeper: `hint_mid` to the middle convolutions' output and `hint_up[i]` to
    each decoder block's output (the hints pooled to that size: at every scale the decoder knows which colours were
    asked for nearby, so a hint can colour a whole thing), and `hint_out` to the full-resolution features of
    fastai's last cross (where the U-Net concatenates L again: a hint acts right where it is put)."""
    def __init__(self, encoder, img_size, n_out=2, y_range=(-1., 1.), channels_last=True, flip_average=False,
                 class_guidance=None, hints=False, **kwargs):
        super().__init__(encoder, n_out, img_size, y_range=y_range, **kwargs)
        if class_guidance: self.layers[3].append(ClassGuide(self.layers[3][-1][0].out_channels, int(class_guidance)))
        self.hint_conv, self.hint_mid, self.hint_up, self.hint_out, self._hints = None, None, None, None, None
        if hints:
            first = next(m for m in self.layers[0].modules() if isinstance(m, nn.Conv2d))
            self.hint_conv = nn.Conv2d(3, first.out_channels, first.kernel_size, first.stride, first.padding,
                                       first.dilation, bias=False)
            first.register_forward_hook(self._add_hints)
            at = [i for i, m in enumerate(self.layers) if isinstance(m, MergeLayer)]
            if at:                                      # fastai's last cross: the full-resolution features + L
                nxt = next(m for m in self.layers[at[-1] + 1].modules() if isinstance(m, nn.Conv2d))
                self.hint_out = nn.Conv2d(3, nxt.in_channels, 3, 1, 1, bias=False)
                self.layers[at[-1]].register_forward_hook(self._add_hints_out)
            mid = [m for m in self.layers[3].modules() if isinstance(m, nn.Conv2d)][-1]   # the middle convolutions
            self.hint_mid = nn.Conv2d(3, mid.out_channels, 3, 1, 1, bias=False)
            self.layers[3].register_forward_hook(self._add_hints_mid)
            blocks = [m for m in self.layers if isinstance(m, UnetBlock)]
            self.hint_up = nn.ModuleList(nn.Conv2d(3, b.conv2[0].out_channels, 3, 1, 1, bias=False) for b in blocks)
            for b, c in zip(blocks, self.hint_up): b.register_forward_hook(partial(ColourUnet._add_pooled, self, c))
            for c in (self.hint_conv, self.hint_mid, self.hint_out, *self.hint_up):
                if c is not None: nn.init.zeros_(c.weight)
        self.img_size, self.n_out, self.channels_last, self.ab_range = tuple(img_size), n_out, channels_last, tuple(y_range)
        self.register_buffer('flip_average', torch.tensor(bool(flip_average)))
        self.register_buffer('chroma_gain', torch.tensor(1.))
        if channels_last: self.to(memory_format=torch.channels_last)

    @property
    def guide(self):
        "The `ClassGuide` of a U-Net built with `class_guidance`, else None."
        return next((m for m in self.layers[3] if isinstance(m, ClassGuide)), None)

    def set_prediction(self, flip_average=None, chroma_gain=None):
        "Set the eval-mode settings in place (those given); returns the U-Net."
        if flip_average is not None: self.flip_average.fill_(bool(flip_average))
        if chroma_gain is not None: self.chroma_gain.fill_(float(chroma_gain))
        return self

    @property
    def takes_hints(self): return getattr(self, 'hint_conv', None) is not None

    def _add_hints(self, module, inputs, out):
        return out if self._hints is None else out + self.hint_conv(self._hints).to(out.dtype)

    def _add_hints_mid(self, module, inputs, out):
        # the middle's hook under the name models exported before `hint_up` pickled: they load and run as they did
        return self._add_pooled(self.hint_mid, module, inputs, out)

    def _add_pooled(self, conv, module, inputs, out):
        """`conv` of the hints pooled to the size of `module`'s output (mean ab of the hinted pixels, the mask's max),
        added to it: in the middle a 3x3 convolution sees much of the picture, so a hint can colour a whole thing."""
        if self._hints is None: return out
        h = self._hints.float()
        k = max(1, round(int(h.shape[-1]) / int(out.shape[-1])))            # a constant in an ONNX trace
        pool = lambda t: F.avg_pool2d(t, k, k, ceil_mode=True)
        share = pool(h[:, 2:])
        pooled = torch.cat([pool(h[:, :2] * h[:, 2:]) / share.clamp_min(1e-6),
                            F.max_pool2d(h[:, 2:], k, k, ceil_mode=True)], 1)
        return out + conv(pooled.to(out.dtype))

    def _add_hints_out(self, module, inputs, out):
        return out if self._hints is None else out + self.hint_out(self._hints).to(out.dtype)

    def _hint_input(self, x, hint_ab, hint_mask):
        if hint_ab is None and hint_mask is None: return None
        if not self.takes_hints:
            raise ValueError("this colouriser was trained without hints: it takes L only (train one with "
                             "colour_learner(..., hints=True) or `colourgan train --hints`)")
        if hint_ab is None or hint_mask is None: raise ValueError("hints need both hint_ab and hint_mask")
        n, _, h, w = x.shape
        if tuple(hint_ab.shape) != (n, 2, h, w) or tuple(hint_mask.shape) != (n, 1, h, w):
            raise ValueError(f"hints must be (N, 2, H, W) ab and (N, 1, H, W) mask for L of shape {tuple(x.shape)}, "
                             f"got {tuple(hint_ab.shape)} and {tuple(hint_mask.shape)}")
        return torch.cat([as_plain(hint_ab), as_plain(hint_mask)], 1).to(x.dtype)

    def _run(self, x, hints):
        self._hints = None if hints is None else _plain_input(hints, self.channels_last)
        try: return super().forward(_plain_input(x, self.channels_last))
        finally: self._hints = None

    def forward(self, x, hint_ab=None, hint_mask=None):
        hints = self._hint_input(x, hint_ab, hint_mask)
        out = self._run(x, hints)
        if self.training: return out
        if self.flip_average:
            out = (out + self._run(as_plain(x).flip(-1), None if hints is None else hints.flip(-1)).flip(-1)) / 2
        return (out * self.chroma_gain.to(out.dtype)).clamp(*self.ab_range)


def colour_unet_of(model) -> ColourUnet:
    "The ColourUnet of a Learner (or the model itself); other generators are refused with a clear TypeError."
    G = get_model(getattr(model, 'model', model))
    if not isinstance(G, ColourUnet):
        raise TypeError(f"this needs a ColourUnet generator (colour_learner makes one), not {type(G).__name__}")
    return G


def use_flip_average(model, on=True):
    """Switch test-time flip averaging (see `ColourUnet`) on or off for a Learner's or a bare ColourUnet; returns
    what it was given. Other generators are refused rather than silently left as they were."""
    colour_unet_of(model).set_prediction(flip_average=on)
    return model


def colour_unet(arch='resnet18', img_size=(64, 64), pretrained=True, weights=None, **unet_kwargs) -> ColourUnet:
    if isinstance(img_size, int): img_size = (img_size, img_size)
    return ColourUnet(encoder_body(arch, pretrained, weights), img_size, **unet_kwargs)


def check_colourizer(G, size):
    "Raise a clear ValueError unless `G` maps an L batch (N,1,H,W) to ab (N,2,H,W)."
    was_training = G.training
    try:
        with torch.no_grad():
            p = next(G.parameters())
            out = G.eval()(torch.zeros(2, 1, *size, device=p.device, dtype=p.dtype))
    except Exception as e:
        raise ValueError(f"not a colourizer: the model must map L (N,1,H,W) to ab (N,2,H,W), and it fails on "
                         f"L input: {e}") from e
    finally: G.train(was_training)
    if out.ndim != 4 or out.shape[1] != 2:
        raise ValueError(f"not a colourizer: the model must output 2 channels (ab); this one outputs shape "
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
