"""What the better recipe adds to a colour Learner's loss, as fastai Callbacks usable with any colour Learner.

Each callback adds a term to `learn.loss_grad` on training batches only (validation keeps the plain L1, so
`valid_loss` stays comparable across recipes) and reports its mean per epoch as a recorder column:

- `SemanticLoss(classifier, weight)`: KL(softmax(clf(true RGB)) || softmax(clf(predicted RGB))) through a frozen
  classifier (e.g. the encoder's own pretrained CIFAR ResNet-20). Gradients reach G only, never the classifier.
  The terms through one network share one frozen copy and one pass over the truth per batch (`TruthPass`).
- `ColourfulnessLoss(weight)`: |mean CF(pred) - mean CF(truth)| / 100 over the batch (Hasler & Suesstrunk's
  colourfulness, as `metrics.colourfulness`): L1 regresses to the mean chroma and gives timid colours (CF 14
  against 28 for real CIFAR-10 photos); this term asks for the real amount of colour, and the L1 term decides
  where it goes.
- `PSNRLoss(weight)`: mean over the images of log10(MSE + eps) of the decoded RGB, i.e. -PSNR/10 per image. PSNR
  is reported as a per-image mean, and a plain L1 treats an error on a near-grey photo like one on a colourful photo,
  though it costs the grey photo far more dB. With `ColourfulnessLoss` it moves the added colour to the images that
  can afford it (docs/experiments/cifar10.md).
- `FeatureLoss(net, weight, layers)`: a perceptual loss (DeOldify's NoGAN pretrains G on one): the L1 distance
  between a frozen network's activations on the predicted and on the true colours, at a few layers, each relative
  to the mean size of the true activations. Gradients reach G only.
- `ClassGuidanceLoss(classifier, weight)`: KL(softmax(clf(true RGB)) || softmax(G's class logits)) for a U-Net with
  a `ClassGuide` (`class_guidance=n_classes`): ChromaGAN's class-distribution loss, which teaches the U-Net's deepest
  features, from L alone, what a classifier sees in the true colours. Unlike `SemanticLoss` it never passes the
  predicted colours through the classifier: only the true ones, without gradients.

They run after `GANColourizer` (order 20), so under a GAN they add to BCE + lambda * L1 rather than being scaled by
lambda.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn
from fastai.callback.core import Callback
from fastai.torch_core import get_model
from fastai.callback.hook import hook_outputs, Hook

from .lab import decode_lab
from .metrics import colourfulness, TrainLossColumn

__all__ = ['LossTerm', 'FrozenNetTerm', 'TruthPass', 'SemanticLoss', 'FeatureLoss', 'ClassGuidanceLoss',
           'ColourfulnessLoss', 'PSNRLoss', 'semantic_kl', 'feature_distance', 'guidance_kl', 'n_classes',
           'colourfulness_gap', 'log_mse']


class LossTerm(Callback):
    """Base class: a weighted extra term of G's loss on training batches. Subclasses define `term(L, pred, target)`
    -> a scalar tensor (unweighted). The weighted term is added to `loss_grad`; its unweighted value is averaged
    per epoch into a recorder column named `name`."""
    order, run_valid = 25, False
    name = 'loss_term'

    def __init__(self, weight=1.):
        if weight < 0: raise ValueError(f"{type(self).__name__}: weight must be >= 0, got {weight}")
        super().__init__()
        self.weight, self.column = float(weight), TrainLossColumn(self.name)

    def before_fit(self): self.learn.metrics = [m for m in self.learn.metrics if m is not self.column] + [self.column]
    def after_fit(self): self.learn.metrics = [m for m in self.learn.metrics if m is not self.column]
    def before_train(self): self.column.reset_epoch()

    def after_loss(self):
        t = self.term(self.learn.xb[0], self.learn.pred, self.learn.yb[0])
        self.learn.loss_grad = self.learn.loss_grad + self.weight * t
        self.learn.loss = self.learn.loss_grad.detach().clone()
        self.column.add(t, self.learn.xb[0].shape[0])

    def term(self, L_, pred, target): raise NotImplementedError


def _plain(t): return t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t


class TruthPass:
    """A frozen copy of a pretrained RGB network (eval mode, parameters never trained) and its one pass over each
    training batch's *true* colours, shared by every loss term built on that network during a fit: the output and
    the activations of the union of the layers the terms ask for, read by fastai's `hook_outputs`. `stats`: the
    (mean, std) RGB normalisation the network expects."""
    def __init__(self, net, stats, layer_names=(), device=None):
        self.net = copy.deepcopy(net).eval().requires_grad_(False).to(device)
        self.stats, self.modules = stats, dict(self.net.named_modules())
        self.mean, self.std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in stats)
        self.layer_names = list(dict.fromkeys(layer_names))
        self.hooks = hook_outputs([self.modules[n] for n in self.layer_names]) if self.layer_names else None
        self.key = self.out = self.acts = None

    def module(self, name): return self.modules[name]

    def rgb(self, L_, ab):
        "The decoded RGB of (L, ab), normalised as the network expects it."
        return (decode_lab(_plain(L_), _plain(ab)) - self.mean.to(L_.device)) / self.std.to(L_.device)

    def __call__(self, L_, target, key):
        "(output, {layer name: activation}) on the true colours, computed once per `key` (the training batch)."
        if key != self.key:
            with torch.no_grad():
                self.out = self.net(self.rgb(L_, target)).float()
                self.acts = dict(zip(self.layer_names, (o.float() for o in self.hooks.stored))) if self.hooks else {}
            self.key = key
        return self.out, self.acts

    def close(self):
        if self.hooks is not None: self.hooks.remove()
        self.key = self.out = self.acts = None


class FrozenNetTerm(LossTerm):
    """Base class of the terms computed through a pretrained RGB network `net` (the user's network is never
    changed). At each fit, the terms built on the same `net` share one `TruthPass`: one frozen copy on G's device
    and one pass over the truth per batch. `stats`: its input normalisation (default: its `stats` attribute, as
    `resnet20_cifar` sets, else ImageNet's). `layer_names`: the layers whose true activations the term reads."""
    layer_names = ()

    def __init__(self, net, weight=1., stats=None):
        super().__init__(weight)
        if not isinstance(net, nn.Module): raise TypeError(f"{type(self).__name__}: the network must be an nn.Module")
        from .encoders import IMAGENET_STATS
        self.source, self.stats, self.shared = net, stats or getattr(net, 'stats', IMAGENET_STATS), None

    def before_fit(self):
        super().before_fit()
        if self.shared is None:                      # the first of the terms on this network to start the fit
            peers = [cb for cb in self.learn.cbs if isinstance(cb, FrozenNetTerm) and cb.source is self.source]
            device = next(get_model(self.learn.model).parameters()).device
            shared = TruthPass(self.source, self.stats, [n for cb in peers for n in cb.layer_names], device)
            for cb in peers: cb.shared = shared

    def truth(self, L_, target): return self.shared(L_, target, self.learn.train_iter)

    @property
    def net(self): return self.shared.net if self.shared is not None else self.source

    def after_fit(self):
        super().after_fit()
        if self.shared is not None: self.shared.close()          # no hooks or batch tensors left behind
        self.shared = None


def semantic_kl(true_logits, pred_logits, temperature=1.):
    """KL(p_true || p_pred) of a classifier's softmax on the true colours and on the predicted ones, mean over the
    batch: 0 when they agree."""
    p_true = F.log_softmax(true_logits.float() / temperature, 1)
    return F.kl_div(F.log_softmax(pred_logits.float() / temperature, 1), p_true, reduction='batchmean',
                    log_target=True)


class SemanticLoss(FrozenNetTerm):
    """`weight` * KL(classifier's softmax on the true colours || on the predicted colours): colours that keep what
    the image *is* (Zhang et al.'s semantic test, turned into a loss). `classifier`: a frozen RGB classifier;
    `stats`: its input normalisation. Use the encoder's own pretrained network, never the classifier that judges
    the results. Gradients reach G only."""
    name = 'loss_semantic'

    def __init__(self, classifier, weight=0.05, stats=None, temperature=1.):
        super().__init__(classifier, weight, stats)
        self.temperature = temperature

    def term(self, L_, pred, target):
        true_logits, _ = self.truth(L_, target)
        return semantic_kl(true_logits, self.net(self.shared.rgb(L_, pred)), self.temperature)


def n_classes(classifier, img_size=(32, 32)) -> int:
    "How many classes `classifier` (an RGB network) scores: the size of its output for one image of `img_size`."
    p = next(classifier.parameters())
    was = classifier.training
    try:
        with torch.no_grad():
            return classifier.eval()(torch.zeros(1, 3, *img_size, device=p.device, dtype=p.dtype)).shape[-1]
    finally: classifier.train(was)


def guidance_kl(true_logits, logits, temperature=1.):
    """KL(softmax(true_logits / T) || softmax(logits)), mean over the batch: 0 when the logits equal the classifier's
    on the true colours up to a constant. Gradients reach `logits` only."""
    p_true = F.log_softmax(true_logits.detach().float() / temperature, 1)
    return F.kl_div(F.log_softmax(_plain(logits).float(), 1), p_true, reduction='batchmean', log_target=True)


class ClassGuidanceLoss(FrozenNetTerm):
    """`weight` * `guidance_kl`: trains the `ClassGuide` of a U-Net built with `class_guidance=n_classes` (and,
    through it, the features it reads) to predict from L what a frozen classifier sees in the true colours. Global
    class guidance for every pixel's colour (Iizuka et al. 2016, ChromaGAN). The guide's logits are read by a fastai
    `Hook` on its head. `classifier`: a frozen RGB classifier with n_classes outputs; use the encoder's own
    pretrained network, never the classifier that judges the results. Refuses a U-Net without a guide, or one
    whose guide has another number of classes, when `fit` starts. The default weight balances the term's gradient
    on the encoder with L1's once the guide has learnt a little (docs/experiments/cifar10.md, class guidance)."""
    name = 'loss_class'

    def __init__(self, classifier, weight=0.003, stats=None, temperature=1.):
        super().__init__(classifier, weight, stats)
        self.temperature, self.hook = temperature, None

    def before_fit(self):
        from .models import colour_unet_of
        G = colour_unet_of(self.learn)
        if G.guide is None:
            raise ValueError("ClassGuidanceLoss needs a U-Net with a class guide: build it with "
                             "colour_learner(..., class_guidance=n_classes)")
        if (n := n_classes(self.source, G.img_size)) != G.guide.n_classes:
            raise ValueError(f"ClassGuidanceLoss: the classifier has {n} classes, the U-Net's guide "
                             f"{G.guide.n_classes}")
        super().before_fit()
        self.hook = Hook(G.guide.head, lambda m, i, o: o, detach=False)

    def term(self, L_, pred, target):
        true_logits, _ = self.truth(L_, target)
        return guidance_kl(true_logits, self.hook.stored, self.temperature)

    def after_fit(self):
        super().after_fit()
        if self.hook is not None: self.hook.remove()
        self.hook = None


def feature_distance(pred_acts, true_acts):
    """Mean over layers of mean|f(pred) - f(true)| / mean|f(true)|, for lists of activations at the same layers:
    0 when they agree."""
    return sum((o.float() - t).abs().mean() / t.abs().mean().clamp_min(1e-6)
               for o, t in zip(pred_acts, true_acts)) / len(true_acts)


def _default_layers(net):
    from torchvision.models import MobileNetV2
    if all(hasattr(net, n) for n in ('layer1', 'layer2', 'layer3')):
        return ['layer1', 'layer2', 'layer3']           # CIFAR ResNets (and torchvision's, minus layer4)
    if isinstance(net, MobileNetV2): return [f'features.{i}' for i in (3, 6, 13)]      # strides 4, 8 and 16
    raise ValueError(f"FeatureLoss: name the layers of {type(net).__name__} to compare (layers=[...])")


class FeatureLoss(FrozenNetTerm):
    """`weight` * `feature_distance`: a perceptual loss through a frozen network (DeOldify's NoGAN pretrains G on
    one), e.g. the encoder's own pretrained ResNet-20. `layers`: names of its modules (default: layer1-3 of a
    ResNet, the ends of MobileNetV2's stride-4, 8 and 16 stages); `stats`: its input normalisation. Unlike
    `SemanticLoss`, which asks only for the same class probabilities, it asks for the same activations everywhere
    in the image at several depths. Use the encoder's own network, never the classifier that judges the results."""
    name = 'loss_feat'

    def __init__(self, net, weight=0.3, layers=None, stats=None):
        super().__init__(net, weight, stats)
        mods = dict(net.named_modules())
        if layers is None: layers = _default_layers(net)
        missing = [n for n in layers if n not in mods]
        if missing or not layers: raise ValueError(f"FeatureLoss: {type(net).__name__} has no layers {missing}")
        self.layer_names = list(layers)

    def term(self, L_, pred, target):
        _, true = self.truth(L_, target)
        with hook_outputs([self.shared.module(n) for n in self.layer_names], detach=False) as h:
            self.net(self.shared.rgb(L_, pred))
            return feature_distance(h.stored, [true[n] for n in self.layer_names])


def colourfulness_gap(L_, pred, target):
    "|mean colourfulness of the predicted RGB - mean colourfulness of the true RGB| / 100 over a batch."
    L_, pred, target = _plain(L_), _plain(pred), _plain(target)
    with torch.no_grad(): cf_true = colourfulness(decode_lab(L_, target)).mean()
    return (colourfulness(decode_lab(L_, pred)).mean() - cf_true).abs() / 100


class ColourfulnessLoss(LossTerm):
    "`weight` * |mean CF(pred) - mean CF(truth)| / 100 per batch: as much colour as real photos have (see module doc)."
    name = 'loss_cf'

    def term(self, L_, pred, target): return colourfulness_gap(L_, pred, target)


def log_mse(L_, pred, target, eps=1e-4):
    """Mean over the batch of log10(per-image MSE + eps) of the decoded RGB in [0, 1]: -PSNR/10 with the PSNR
    capped near -10 log10(eps) = 40 dB, so a perfect image does not send an unbounded gradient."""
    L_, pred, target = _plain(L_), _plain(pred), _plain(target)
    with torch.no_grad(): true = decode_lab(L_, target)
    mse = (decode_lab(L_, pred) - true).pow(2).flatten(1).mean(1)
    return torch.log10(mse + eps).mean()


class PSNRLoss(LossTerm):
    "`weight` * mean log10(MSE_i + eps) over the batch's images (= -PSNR/10): fidelity in the metric's own units."
    name = 'loss_psnr'

    def __init__(self, weight=0.2, eps=1e-4):
        super().__init__(weight)
        if eps <= 0: raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = eps

    def term(self, L_, pred, target): return log_mse(L_, pred, target, self.eps)
