"""What the better recipe adds to a colour Learner's loss, as fastai Callbacks usable with any colour Learner.

Each callback adds a term to `learn.loss_grad` on training batches only (validation keeps the plain L1, so
`valid_loss` stays comparable across recipes) and reports its mean per epoch as a recorder column:

- `SemanticLoss(classifier, weight)`: KL(softmax(clf(true RGB)) || softmax(clf(predicted RGB))) through a frozen
  classifier (e.g. the encoder's own pretrained CIFAR ResNet-20). Gradients reach G only, never the classifier.
- `ColourfulnessLoss(weight)`: |mean CF(pred) - mean CF(truth)| / 100 over the batch (Hasler & Suesstrunk's
  colourfulness, as `metrics.colourfulness`): L1 regresses to the mean chroma and gives timid colours (CF 14
  against 28 for real CIFAR-10 photos); this term asks for the real amount of colour, and the L1 term decides
  where it goes.
- `PSNRLoss(weight)`: mean over the images of log10(MSE + eps) of the decoded RGB, i.e. -PSNR/10 per image. PSNR
  is reported as a per-image mean, and a plain L1 treats an error on a near-grey photo like one on a colourful photo,
  though it costs the grey photo far more dB. With `ColourfulnessLoss` it moves the added colour to the images that
  can afford it (README, ablation).
- `FeatureLoss(net, weight, layers)`: a perceptual loss (DeOldify's NoGAN pretrains G on one): the L1 distance
  between a frozen network's activations on the predicted and on the true colours, at a few layers, each relative
  to the mean size of the true activations. Gradients reach G only.
- `ClassGuidanceLoss(classifier, weight)`: KL(softmax(clf(true RGB)) || softmax(G's class logits)) for a U-Net with
  a `ClassGuide` (`class_guidance=n_classes`): ChromaGAN's class-distribution loss, which teaches the U-Net's deepest
  features, from L alone, what a classifier sees in the true colours. Unlike `SemanticLoss` it never passes the
  predicted colours through the classifier: only the true ones, without gradients.
- `WeightEMA(decay)`: an exponential moving average of G's weights (standard in modern GANs), swapped in for
  validation and at the end of training.

They run after `GANColourizer` (order 20), so under a GAN they add to BCE + lambda * L1 rather than being scaled by
lambda.
"""
import copy
import weakref

import torch
import torch.nn.functional as F
from torch import nn
from fastai.callback.core import Callback
from fastai.torch_core import get_model
from fastai.callback.hook import hook_outputs

from .lab import decode_lab
from .metrics import colourfulness, TrainLossColumn

__all__ = ['LossTerm', 'FrozenNetTerm', 'SemanticLoss', 'FeatureLoss', 'ClassGuidanceLoss', 'ColourfulnessLoss',
           'PSNRLoss', 'WeightEMA', 'semantic_kl', 'feature_distance', 'guidance_kl', 'n_classes', 'frozen_copy',
           'truth_pass', 'colourfulness_gap', 'log_mse']


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


def _net_input(stats, L_):
    """A function (L, ab) -> the decoded RGB normalised by `stats` = (mean, std), as a pretrained RGB network expects
    it, on `L_`'s device."""
    m, s = (torch.tensor(v, device=L_.device).view(1, 3, 1, 1) for v in stats)
    return lambda L_, ab: (decode_lab(_plain(L_), _plain(ab)) - m) / s


def semantic_kl(clf, stats, L_, pred, target, temperature=1.):
    """KL(p_true || p_pred) of a classifier's softmax on the true colours and on the predicted ones, mean over the
    batch. `stats`: (mean, std) of the RGB normalisation the classifier expects. 0 when pred == target."""
    p_true = F.log_softmax(truth_pass(clf, stats, L_, target)[0] / temperature, 1)
    p_pred = F.log_softmax(clf(_net_input(stats, L_)(L_, pred)).float() / temperature, 1)
    return F.kl_div(p_pred, p_true, reduction='batchmean', log_target=True)


_FROZEN = weakref.WeakKeyDictionary()          # source network -> (its weights' versions, its frozen copy)


def _versions(net): return tuple((id(t), t._version) for t in [*net.parameters(), *net.buffers()])


def frozen_copy(net: nn.Module) -> nn.Module:
    """A copy of `net` in eval mode with its parameters never trained; one per source network while the source's
    weights stay as they were, so that the terms built from it share the copy and, through `truth_pass`, its pass
    over each batch's true colours. A source trained or loaded since gets a fresh copy."""
    seen = _FROZEN.get(net)
    if seen is None or seen[0] != _versions(net):
        seen = _FROZEN[net] = (_versions(net), copy.deepcopy(net).eval().requires_grad_(False))
    return seen[1]


def truth_pass(net, stats, L_, target, layers=()):
    """(output, [activation of each of `layers`]) of `net` on the true colours (L, target), without gradients. The
    result is kept on `net` until another target comes, so the terms through one network pay for one pass per batch
    (the first term to ask should name every layer; `ClassGuidanceLoss` runs after `FeatureLoss` for that)."""
    memo, key = net.__dict__.get('_truth_memo'), (target._version, stats)
    if memo is not None and memo[0] is target and memo[1] == key and all(l in memo[3] for l in layers):
        return memo[2], [memo[3][l] for l in layers]
    with torch.no_grad(), hook_outputs(layers) as h:
        out = net(_net_input(stats, L_)(L_, target)).float()
        acts = {l: o.float() for l, o in zip(layers, h.stored)}
    net.__dict__['_truth_memo'] = (target, key, out, acts)
    return out, [acts[l] for l in layers]


class FrozenNetTerm(LossTerm):
    """Base class of the terms computed through a pretrained RGB network: keeps a frozen copy of `net` (eval mode,
    parameters never trained; `frozen_copy`, shared with the other terms built from `net`) on G's device; `stats`:
    its input normalisation (default: its `stats` attribute, as `resnet20_cifar` sets, else ImageNet's)."""
    def __init__(self, net, weight=1., stats=None):
        super().__init__(weight)
        if not isinstance(net, nn.Module): raise TypeError(f"{type(self).__name__}: the network must be an nn.Module")
        self.net = frozen_copy(net)
        from .encoders import IMAGENET_STATS
        self.stats = stats or getattr(net, 'stats', IMAGENET_STATS)

    def before_fit(self):
        super().before_fit()
        p = next(get_model(self.learn.model).parameters())
        self.net.to(p.device).eval()

    def after_fit(self):
        super().after_fit()
        self.net.__dict__.pop('_truth_memo', None)          # no batch tensors left behind


class SemanticLoss(FrozenNetTerm):
    """`weight` * KL(classifier's softmax on the true colours || on the predicted colours): colours that keep what
    the image *is* (Zhang et al.'s semantic test, turned into a loss). `classifier`: a frozen RGB classifier (a copy
    is kept, in eval mode, its parameters never trained); `stats`: its input normalisation (default: the
    classifier's `stats` attribute, as `resnet20_cifar` sets, else ImageNet's). Use the encoder's own pretrained
    network, never the classifier that judges the results."""
    name = 'loss_semantic'

    def __init__(self, classifier, weight=0.05, stats=None, temperature=1.):
        super().__init__(classifier, weight, stats)
        self.temperature = temperature

    @property
    def clf(self): return self.net

    def term(self, L_, pred, target): return semantic_kl(self.net, self.stats, L_, pred, target, self.temperature)


def n_classes(classifier, img_size=(32, 32)) -> int:
    "How many classes `classifier` (an RGB network) scores: the size of its output for one image of `img_size`."
    p = next(classifier.parameters())
    was = classifier.training
    try:
        with torch.no_grad():
            return classifier.eval()(torch.zeros(1, 3, *img_size, device=p.device, dtype=p.dtype)).shape[-1]
    finally: classifier.train(was)


def guidance_kl(clf, stats, L_, target, logits, temperature=1.):
    """KL(p_true || softmax(logits)) where p_true is the classifier's softmax on the true colours (computed without
    gradients), mean over the batch: 0 when the logits equal the classifier's up to a constant."""
    p_true = F.log_softmax(truth_pass(clf, stats, L_, target)[0] / temperature, 1)
    return F.kl_div(F.log_softmax(_plain(logits).float(), 1), p_true, reduction='batchmean', log_target=True)


class ClassGuidanceLoss(FrozenNetTerm):
    """`weight` * `guidance_kl`: trains the `ClassGuide` of a U-Net built with `class_guidance=n_classes` (and,
    through it, the features it reads) to predict from L what a frozen classifier sees in the true colours. Global
    class guidance for every pixel's colour (Iizuka et al. 2016, ChromaGAN). `classifier`: a frozen RGB classifier
    with n_classes outputs (a copy is kept, in eval mode, never trained); use the encoder's own pretrained network,
    never the classifier that judges the results. `stats`: as for `SemanticLoss`. Refuses a U-Net without a guide,
    or one whose guide has another number of classes, when `fit` starts. The default weight balances the term's
    gradient on the encoder with L1's once the guide has learnt a little (the KL's is ~150 times L1's there:
    bench/gradient_scale.py, README, Case 1, step 19)."""
    name = 'loss_class'
    order = LossTerm.order + 1          # after FeatureLoss through the same network: its pass on the truth is reused

    def __init__(self, classifier, weight=0.003, stats=None, temperature=1.):
        super().__init__(classifier, weight, stats)
        self.temperature = temperature

    def before_fit(self):
        super().before_fit()
        from .models import colour_unet_of
        G = colour_unet_of(self.learn)
        self._guide = G.guide
        if self._guide is None:
            raise ValueError("ClassGuidanceLoss needs a U-Net with a class guide: build it with "
                             "colour_learner(..., class_guidance=n_classes)")
        if (n := n_classes(self.net, G.img_size)) != self._guide.n_classes:
            raise ValueError(f"ClassGuidanceLoss: the classifier has {n} classes, the U-Net's guide "
                             f"{self._guide.n_classes}")

    def term(self, L_, pred, target):
        logits, self._guide.logits = self._guide.logits, None
        if logits is None: raise RuntimeError("ClassGuidanceLoss: the guide kept no logits (was G in training mode?)")
        return guidance_kl(self.net, self.stats, L_, target, logits, self.temperature)


def feature_distance(net, stats, layers, L_, pred, target):
    """Mean over `layers` (modules of `net`) of mean|f(pred) - f(true)| / mean|f(true)|, where f is the layer's
    activation when `net` sees the decoded RGB, normalised by `stats` = (mean, std). 0 when pred == target; the
    true pass runs without gradients."""
    true = truth_pass(net, stats, L_, target, layers)[1]
    with hook_outputs(layers, detach=False) as h:
        net(_net_input(stats, L_)(L_, pred))
        return sum((o.float() - t).abs().mean() / t.abs().mean().clamp_min(1e-6)
                   for o, t in zip(h.stored, true)) / len(true)


def _default_layers(net):
    from torchvision.models import MobileNetV2
    if all(hasattr(net, n) for n in ('layer1', 'layer2', 'layer3')):
        return [net.layer1, net.layer2, net.layer3]     # CIFAR ResNets (and torchvision's, minus layer4)
    if isinstance(net, MobileNetV2): return [net.features[i] for i in (3, 6, 13)]      # strides 4, 8 and 16
    raise ValueError(f"FeatureLoss: name the layers of {type(net).__name__} to compare (layers=[...])")


class FeatureLoss(FrozenNetTerm):
    """`weight` * `feature_distance`: a perceptual loss through a frozen network (a copy is kept, in eval mode,
    never trained), e.g. the encoder's own pretrained ResNet-20. `layers`: names of its modules (default: layer1-3
    of a ResNet, the ends of MobileNetV2's stride-4, 8 and 16 stages); `stats`: its input normalisation (default:
    its `stats` attribute, else ImageNet's). Unlike `SemanticLoss`, which asks only for the same class
    probabilities, it asks for the same activations everywhere in the image at several depths. Use the encoder's
    own network, never the classifier that judges the results. The default weight is the recipe's (README, Case 1,
    step 12)."""
    name = 'loss_feat'

    def __init__(self, net, weight=0.3, layers=None, stats=None):
        super().__init__(net, weight, stats)
        mods = dict(self.net.named_modules())
        if layers is None: self.layers = _default_layers(self.net)
        else:
            missing = [n for n in layers if n not in mods]
            if missing or not layers: raise ValueError(f"FeatureLoss: {type(net).__name__} has no layers {missing}")
            self.layers = [mods[n] for n in layers]

    def term(self, L_, pred, target): return feature_distance(self.net, self.stats, self.layers, L_, pred, target)


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


class WeightEMA(Callback):
    """Exponential moving average of G's parameters and buffers: after each training step
    ema = decay * ema + (1 - decay) * w. Validation runs on the averaged weights, and after `fit` the model keeps
    them (`swap_at_end=True`), so `save`, `export` and `colourize` use the average. `decay=None` adapts it to the
    run: a half-life of a tenth of the run's batches."""
    order = 60

    def __init__(self, decay=None, swap_at_end=True):
        if decay is not None and not 0 < decay < 1: raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay, self.swap_at_end, self.ema = decay, swap_at_end, None

    def _state(self): return get_model(self.learn.model).state_dict()

    def before_fit(self):
        self.ema = {k: v.detach().clone() for k, v in self._state().items()}
        self._d = self.decay
        if self._d is None:
            n = max(1, self.n_epoch * len(self.dls.train))
            self._d = 0.5 ** (1 / max(1., n / 10))
        self._live, self._fitting = None, True

    @torch.no_grad()
    def after_step(self):
        for k, v in self._state().items():
            e = self.ema[k]
            if v.is_floating_point(): e.lerp_(v.detach(), 1 - self._d)
            else: e.copy_(v)

    def _swap_in(self):
        m = get_model(self.learn.model)
        self._live = {k: v.detach().clone() for k, v in m.state_dict().items()}
        m.load_state_dict(self.ema)

    def _swap_out(self):
        if self._live is not None: get_model(self.learn.model).load_state_dict(self._live)
        self._live = None

    def before_validate(self):
        if getattr(self, '_fitting', False): self._swap_in()      # only inside fit: `learn.validate()` is untouched

    def after_validate(self): self._swap_out()

    def after_fit(self):
        self._swap_out()
        self._fitting = False
        if self.swap_at_end and self.ema is not None: get_model(self.learn.model).load_state_dict(self.ema)
