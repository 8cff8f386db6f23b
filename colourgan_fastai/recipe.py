"""Named training recipes: one `Recipe` object per recipe holds every setting, read by Python and by the CLI alike.

- `Recipe.cifar10()`: the library's CIFAR-10 recipe. Phase 1: L1 with an EMA of G's weights, `FeatureLoss` through
  the encoder's own pretrained network and global class guidance (`ClassGuidanceLoss`); then a colour phase that
  adds `ColourfulnessLoss` and `PSNRLoss` on all but a share of the training images, on which one chroma gain is
  fitted after training; flip averaging. No discriminator (docs/experiments/cifar10.md).
- `Recipe.photos()`: the same two phases for natural photos, with a lighter colour phase and no guide; it learns
  colour hints, with a gain fitted on whole set-aside photos (docs/experiments/photos.md, hints.md).
- `Recipe.seed()`: the reference implementations' recipe, reproduced: L1 pretraining of the U-Net, then GAN
  fine-tuning with `GANColourizer` (lambda = 100).

    recipe = Recipe.cifar10()                         # or Recipe.cifar10(epochs=2): any field can be changed
    net = encoder_classifier('resnet20_cifar', weights=w)       # the encoder's own pretrained network
    learn = colour_learner(dls, arch=resnet20_cifar(w), class_guidance=recipe.guide_classes(net, dls),
                           hints=recipe.hints)
    train(learn, recipe, net=net)
"""
from dataclasses import dataclass, fields, replace

from fastai.callback.progress import CSVLogger

from .gan import GANColourizer
from .ema import WeightEMA
from .losses import SemanticLoss, FeatureLoss, ClassGuidanceLoss, ColourfulnessLoss, PSNRLoss, n_classes

__all__ = ['Recipe', 'train', 'train_l1_then_gan', 'train_semantic_colour', 'CalibrationError']


@dataclass(frozen=True)
class Recipe:
    """The settings of a named training recipe (see the module docstring); `Recipe.cifar10(epochs=2)` changes one.
    `kind`: 'colour' (L1 phase, then a colour phase) or 'gan' (L1 phase, then GAN fine-tuning)."""
    name: str = 'photos'
    kind: str = 'colour'
    epochs: int = 4                   # phase 1: L1 epochs
    lr: float = 1e-3                  # phase 1's peak learning rate
    colour_epochs: int = 1            # colour recipes: epochs of the colour phase
    colour_lr: float = 3e-4
    gan_epochs: int = 0               # GAN recipes: epochs of adversarial fine-tuning
    gan_lr: float = 2e-4
    lambda_l1: float = 100.           # GAN recipes: G loss = BCE + lambda_l1 * L1
    feature_weight: float = 0.3       # FeatureLoss through the encoder's own network, both phases (0: off)
    class_weight: float = 0.          # ClassGuidanceLoss through the encoder's own classifier, both phases (0: off)
    semantic_weight: float = 0.       # SemanticLoss through it (measured no gain: off in every named recipe)
    colourfulness_weight: float = 0.5 # the colour phase's ColourfulnessLoss
    psnr_weight: float = 0.2          # the colour phase's PSNRLoss
    ema: bool = True                  # validate and end each colour-recipe phase on an EMA of G's weights
    flip_average: bool = False        # predictions average each image with its mirror image
    calibrate: float | None = None    # fit a chroma gain after training: the truth's colourfulness minus this gap
                                      # (negative: more colour than the truth)
    calibration_share: float = 0.04   # ... on this share of the training images, kept from the colour phase
    calibrate_whole: bool = False     # ... measured on those photos whole, at their stored size, through `colourize`
                                      # (the colour a user sees), not on their training-size crops
    hints: bool = False               # build the U-Net to learn colour hints too (`colour_learner(..., hints=True)`)

    def __post_init__(self):
        if self.kind not in ('colour', 'gan'): raise ValueError(f"Recipe.kind must be 'colour' or 'gan', not {self.kind!r}")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0 and f.name != 'calibrate':
                raise ValueError(f"Recipe.{f.name} must be >= 0, got {v}")
        if not 0 < self.calibration_share < 1:
            raise ValueError(f"Recipe.calibration_share must be in (0, 1), got {self.calibration_share}")

    @classmethod
    def cifar10(cls, **changes):
        "The library's CIFAR-10 recipe (about 51 min on 2 CPU cores for 50,000 images: docs/experiments/cifar10.md)."
        return cls(**{**dict(name='cifar10', epochs=8, class_weight=0.003, colourfulness_weight=3., psnr_weight=2.,
                             flip_average=True, calibrate=0.5), **changes})

    @classmethod
    def photos(cls, **changes):
        """The photo recipe: for natural photos, Imagenette or any folder (docs/experiments/photos.md). It learns colour
        hints too, and fits a chroma gain on whole set-aside photos so that without hints it paints the hint-free
        recipe's amount of colour (docs/experiments/hints.md); `hints=False`: the hint-free recipe, without the gain."""
        hinted = dict(hints=True, calibrate=10.5, calibrate_whole=True) if changes.get('hints', True) else {}
        return cls(**{**dict(name='photos', epochs=10), **hinted, **changes})

    @classmethod
    def seed(cls, **changes):
        "The reference implementations' recipe: 20 L1 epochs, then 20 GAN epochs with lambda 100, lr 2e-4."
        return cls(**{**dict(name='seed', kind='gan', epochs=20, gan_epochs=20, feature_weight=0., colour_epochs=0,
                             ema=False), **changes})

    @classmethod
    def named(cls, name, **changes):
        "The recipe called `name` ('cifar10', 'photos' or 'seed')."
        if name not in RECIPE_NAMES: raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPE_NAMES)}")
        return getattr(cls, name)(**changes)

    def replace(self, **changes):
        "A copy with the changes that are not None (options left unset keep the recipe's value)."
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def guide_classes(self, net, dls_or_size):
        """The `class_guidance` to build the U-Net with: the number of classes of `net` (the encoder's own pretrained
        classifier) when the recipe trains a guide and there is such a network, else None."""
        if not self.class_weight or net is None or self.kind != 'colour': return None
        size = dls_or_size if isinstance(dls_or_size, tuple) else tuple(dls_or_size.one_batch()[0].shape[-2:])
        return n_classes(net, size)

    def n_calibration(self, n_train):
        "How many of `n_train` training images the recipe keeps aside to fit the chroma gain on (2,000 of 50,000)."
        if n_train < 2: raise ValueError(f"{n_train} training image(s) leave none to set aside for calibration")
        return min(max(1, round(self.calibration_share * n_train)), n_train - 1)


RECIPE_NAMES = ('cifar10', 'photos', 'seed')


class CalibrationError(ValueError):
    "The chroma gain could not reach its target after training (the trained model is left as it is, uncalibrated)."


def _logs(csv_logs, phase): return [CSVLogger(f'{phase}_log.csv')] if csv_logs else []


def network_terms(net=None, feature_weight=0.3, class_weight=0., semantic_weight=0., guided=True):
    """The loss terms through the encoder's own pretrained network `net` for both phases (a weight of 0, no network,
    or no guide in the U-Net for the class term, leaves a term out)."""
    if net is None: return []
    return ([SemanticLoss(net, semantic_weight)] if semantic_weight else []) + \
           ([FeatureLoss(net, feature_weight)] if feature_weight else []) + \
           ([ClassGuidanceLoss(net, class_weight)] if class_weight and guided else [])


def train_l1_then_gan(learn, epochs=20, gan_epochs=20, lr=1e-3, gan_lr=2e-4, lambda_l1=100., csv_logs=False,
                      after_l1=None, phase1_cbs=(), **gan_kwargs):
    """The seed recipe: `fit_one_cycle(epochs, lr)` with L1, then `GANColourizer(lambda_l1, **gan_kwargs)` and
    `fit_one_cycle(gan_epochs, gan_lr)`. `csv_logs`: write each phase's log with fastai's CSVLogger to
    `unet_log.csv` / `gan_log.csv` in `learn.path`. `after_l1(learn)` runs between the phases (e.g. to save
    the U-Net-only model); `phase1_cbs` are extra callbacks for the L1 phase (e.g. `ProgressiveResizing`).
    Returns the GANColourizer (attached, so that `learn.save` writes D beside G)."""
    if epochs: learn.fit_one_cycle(epochs, lr, cbs=list(phase1_cbs) + _logs(csv_logs, 'unet'))
    if after_l1 is not None: after_l1(learn)
    gan = GANColourizer(lambda_l1=lambda_l1, **gan_kwargs)
    learn.add_cb(gan)
    if gan_epochs: learn.fit_one_cycle(gan_epochs, gan_lr, cbs=_logs(csv_logs, 'gan'))
    return gan


def train_semantic_colour(learn, epochs=4, colour_epochs=1, lr=1e-3, colour_lr=3e-4, net_terms=(),
                          colourfulness_weight=0.5, psnr_weight=0.2, ema=True, csv_logs=False, after_l1=None,
                          phase1_cbs=(), colour_cbs=(), colour_dls=None):
    """The two phases of the colour recipes. Phase 1: `fit_one_cycle(epochs, lr)` on L1 plus `net_terms` (loss
    terms through a pretrained network, e.g. `FeatureLoss`), validating and ending on an EMA of G's weights
    (`lr=slice(lo, hi)`: fastai's discriminative rates). Phase 2: `fit_one_cycle(colour_epochs, colour_lr)` adding
    `ColourfulnessLoss` and `PSNRLoss` (a weight of 0 leaves a term out) to the same terms, on `colour_dls` when
    given (`learn.dls` becomes them: e.g. all but the images a chroma gain is then fitted on). `after_l1(learn)` runs
    between the phases; `epochs=0` skips phase 1; `phase1_cbs` and `colour_cbs` are extra callbacks for each phase.
    Returns the loss terms of phase 2."""
    ema_cb = lambda: [WeightEMA()] if ema else []
    if epochs: learn.fit_one_cycle(epochs, lr, cbs=list(phase1_cbs) + list(net_terms) + ema_cb() + _logs(csv_logs, 'unet'))
    if after_l1 is not None: after_l1(learn)
    if colour_dls is not None: learn.dls = colour_dls
    cf = ([ColourfulnessLoss(colourfulness_weight)] if colourfulness_weight else []) + \
         ([PSNRLoss(psnr_weight)] if psnr_weight else [])
    if colour_epochs:
        learn.fit_one_cycle(colour_epochs, colour_lr, cbs=list(net_terms) + cf + list(colour_cbs) + ema_cb() +
                            _logs(csv_logs, 'colour'))
    return list(net_terms) + cf


def train(learn, recipe=None, net=None, csv_logs=False, after_l1=None, phase1_cbs=(), seed=42, say=print):
    """Train `learn` (a `colour_learner`) with `recipe` (default `Recipe.photos()`), then set its prediction settings:
    flip averaging, and a chroma gain fitted on training images the colour phase never saw. `net`: the encoder's own
    pretrained network (`encoder_classifier`) for the recipe's feature and class terms; without one they are left
    out. `seed` chooses the images set aside. Returns the fitted chroma gain (None when the recipe fits none). A gain
    that cannot reach its target raises `CalibrationError` after training, leaving the trained model as it is."""
    from .calibration import calibrate_colourfulness
    from .data import hold_out
    from .models import colour_unet_of, use_flip_average
    recipe = recipe or Recipe.photos()
    G = colour_unet_of(learn)
    if recipe.class_weight and recipe.kind == 'colour' and net is not None and G.guide is None:
        say("train: the U-Net has no class guide, so ClassGuidanceLoss is left out "
            "(build it with class_guidance=recipe.guide_classes(net, dls))")
    if recipe.hints and not getattr(G, 'takes_hints', False):
        say("train: the recipe learns colour hints but this U-Net takes none; build it with "
            "colour_learner(..., hints=recipe.hints), or use the recipe with hints=False")
    held = None
    if recipe.calibrate is not None:
        n = recipe.n_calibration(len(learn.dls.train_ds))
        colour_dls, held = hold_out(learn.dls, n, seed)
        say(f"train: {n} training images kept from the {'colour' if recipe.kind == 'colour' else 'GAN'} phase to fit "
            f"the chroma gain on")
    else: colour_dls = None
    if recipe.kind == 'gan':
        def l1_then_aside(l):
            if after_l1 is not None: after_l1(l)
            if colour_dls is not None: l.dls = colour_dls
        train_l1_then_gan(learn, recipe.epochs, recipe.gan_epochs, recipe.lr, recipe.gan_lr, recipe.lambda_l1,
                          csv_logs, l1_then_aside, phase1_cbs)
    else:
        terms = network_terms(net, recipe.feature_weight, recipe.class_weight, recipe.semantic_weight,
                              guided=G.guide is not None)
        train_semantic_colour(learn, recipe.epochs, recipe.colour_epochs, recipe.lr, recipe.colour_lr, terms,
                              recipe.colourfulness_weight, recipe.psnr_weight, recipe.ema, csv_logs, after_l1,
                              phase1_cbs, colour_dls=colour_dls)
    if recipe.flip_average: use_flip_average(learn)
    if held is None: return None
    photos = _whole_photos(held, say) if recipe.calibrate_whole else None
    try: gain = calibrate_colourfulness(learn, held, gap=recipe.calibrate, photos=photos)
    except ValueError as e: raise CalibrationError(str(e)) from e
    say(f"train: chroma gain {gain:.3f} makes the set-aside images' colourfulness the truth's minus {recipe.calibrate:g}"
        + (" (whole, at their stored size)" if photos else ""))
    return gain


def _whole_photos(held, say):
    "The files behind the set-aside DataLoader, or None (with a note) where its images are not files (cached arrays)."
    from pathlib import Path
    items = list(getattr(held.dataset, 'items', []))
    if items and all(isinstance(i, (str, Path)) for i in items): return items
    say("train: the set-aside images are not files, so the chroma gain is fitted on their training-size crops")
    return None
