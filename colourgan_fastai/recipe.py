"""Named training recipes.

- `train_l1_then_gan` ('seed'): the reference implementations' recipe, reproduced: L1 pretraining of the U-Net, then
  GAN fine-tuning with `GANColourizer` (lambda = 100).
- `train_semantic_colour` ('semantic', the library's default): L1 with an EMA of G's weights (and, given the
  encoder's own pretrained network, `FeatureLoss` or a semantic loss through it); then a short phase that adds
  `ColourfulnessLoss`, which asks for the real amount of colour while L1 and `PSNRLoss` decide where it goes. No
  discriminator: on CIFAR-10 it matches the truth's colourfulness at a smaller loss of PSNR than the GAN (README,
  Results). The name is the recipe's history: its semantic term is opt-in since it measured no gain on two seeds
  (README, ablation).
"""
from fastai.callback.progress import CSVLogger

from .gan import GANColourizer
from .losses import SemanticLoss, FeatureLoss, ClassGuidanceLoss, ColourfulnessLoss, PSNRLoss, WeightEMA

__all__ = ['train_l1_then_gan', 'train_semantic_colour', 'PHOTO_COLOURFULNESS_WEIGHT', 'PSNR_WEIGHT', 'FEATURE_WEIGHT',
           'CIFAR10_RECIPE', 'calibration_images', 'RECIPES']

SEMANTIC_WEIGHT = 0.05      # SemanticLoss's weight when a classifier is given (CIFAR-10's 10-way ResNet-20)
COLOURFULNESS_WEIGHT = 1.5  # the colour phase's, screened on CIFAR-10 (README, Case 1)
PHOTO_COLOURFULNESS_WEIGHT = 0.5    # on 96-160 px photos: the same colour amount, +0.5 dB, a third fewer blotches
PSNR_WEIGHT = 0.2           # the colour phase's PSNRLoss, screened with COLOURFULNESS_WEIGHT (README, Case 1)
FEATURE_WEIGHT = 0.3        # FeatureLoss's, when a feature_net is given (set from the gradient scale: README, step 12)
CLASS_WEIGHT = 0.003        # ClassGuidanceLoss's, when a class_net is given (gradient scale; README, step 19)
PHASE1_LR = 1e-3            # phase 1's peak learning rate (a slice(lo, hi) gives the encoder lo: discriminative rates)

# The CIFAR-10 recipe that met every line of #11's goal on each seed measured (README, Case 1, steps 19-20): the defaults of
# `colourgan train --dataset cifar10` and of examples/cifar10_same_dataset.py where they differ from
# `train_semantic_colour`'s own (step 12's recipe). A class guide in the U-Net and `ClassGuidanceLoss`; 8 phase-1
# epochs on every training image; a colour phase that leans to fidelity (ColourfulnessLoss 3 + PSNRLoss 2) on all but
# `calibration_share` of them, on which the chroma gain is then fitted to the truth's colourfulness minus
# `calibrate`; flip averaging. `calibrate` aims one standard deviation of the gain's sampling error inside the goal's
# |ΔCF| <= 1 (bench/calibration_margin.py: ± 0.5 when fitted on 2,000 images and read on 5,000 others; README, step 20).
CIFAR10_RECIPE = dict(epochs=8, class_weight=CLASS_WEIGHT, colourfulness_weight=3., psnr_weight=2., flip_average=True,
                      calibrate=0.5, calibration_share=0.04)


def calibration_images(n_train, share=CIFAR10_RECIPE['calibration_share']):
    "How many of `n_train` training images a recipe sets aside to fit the chroma gain on: 2,000 of CIFAR-10's 50,000."
    if n_train < 2: raise ValueError(f"{n_train} training image(s) leave none to set aside for calibration")
    return min(max(1, round(share * n_train)), n_train - 1)


def _logs(csv_logs, phase): return [CSVLogger(f'{phase}_log.csv')] if csv_logs else []


def network_terms(classifier=None, semantic_weight=SEMANTIC_WEIGHT, feature_net=None, feature_weight=FEATURE_WEIGHT,
                  class_net=None, class_weight=CLASS_WEIGHT):
    """The loss terms through pretrained networks that `train_semantic_colour` adds to both phases (a weight of 0 or
    no network leaves a term out): `SemanticLoss` through `classifier`, `FeatureLoss` through `feature_net`,
    `ClassGuidanceLoss` through `class_net` (for a U-Net built with `class_guidance`)."""
    return ([SemanticLoss(classifier, semantic_weight)] if classifier is not None and semantic_weight else []) + \
           ([FeatureLoss(feature_net, feature_weight)] if feature_net is not None and feature_weight else []) + \
           ([ClassGuidanceLoss(class_net, class_weight)] if class_net is not None and class_weight else [])


def train_l1_then_gan(learn, epochs=20, gan_epochs=20, lr=1e-3, gan_lr=2e-4, lambda_l1=100., csv_logs=False,
                      after_l1=None, phase1_cbs=(), **gan_kwargs):
    """The seed recipe: `fit_one_cycle(epochs, lr)` with L1, then `GANColourizer(lambda_l1, **gan_kwargs)` and
    `fit_one_cycle(gan_epochs, gan_lr)`. `csv_logs`: write each phase's log with fastai's CSVLogger to
    `unet_log.csv` / `gan_log.csv` in `learn.path`. `after_l1(learn)` runs between the phases (e.g. to save
    the U-Net-only model); `phase1_cbs` are extra callbacks for the L1 phase (e.g. `ProgressiveResizing`).
    Returns the GANColourizer (already attached)."""
    if epochs: learn.fit_one_cycle(epochs, lr, cbs=list(phase1_cbs) + _logs(csv_logs, 'unet'))
    if after_l1 is not None: after_l1(learn)
    gan = GANColourizer(lambda_l1=lambda_l1, **gan_kwargs)
    learn.add_cb(gan)
    if gan_epochs: learn.fit_one_cycle(gan_epochs, gan_lr, cbs=_logs(csv_logs, 'gan'))
    return gan


def train_semantic_colour(learn, epochs=4, colour_epochs=1, lr=PHASE1_LR, colour_lr=3e-4, classifier=None,
                          semantic_weight=SEMANTIC_WEIGHT, feature_net=None, feature_weight=FEATURE_WEIGHT,
                          colourfulness_weight=COLOURFULNESS_WEIGHT, psnr_weight=PSNR_WEIGHT,
                          colour_feature_weight=None, class_net=None, class_weight=CLASS_WEIGHT, ema=True,
                          csv_logs=False, after_l1=None, phase1_cbs=(), colour_cbs=(), colour_dls=None):
    """The library's default recipe. Phase 1: `fit_one_cycle(epochs, lr)` on L1, validating and ending on an EMA of
    G's weights (`lr=slice(lo, hi)`: fastai's discriminative rates, the encoder at `lo`, the decoder at `hi`;
    README, Case 1, step 18 measured lo = hi/10 and kept one rate). Phase 2: `fit_one_cycle(colour_epochs,
    colour_lr)` adding `ColourfulnessLoss` and `PSNRLoss` (a weight of 0 leaves a term out; for photos pass
    `colourfulness_weight=PHOTO_COLOURFULNESS_WEIGHT`, as `colourgan train` does: 1.5 paints them a sepia cast,
    README Case 2). Given a `classifier` (the encoder's own pretrained RGB classifier), both phases add
    `semantic_weight` * KL through it. The default is no classifier: on CIFAR-10 the term cost 0.6 dB at the end and
    did not raise an independent judge's top-1 (two seeds), and through ImageNet's 1000 classes it turns adversarial
    (README). Given a `feature_net` (the encoder's own pretrained network), both phases add `feature_weight` *
    `FeatureLoss` through it (`colour_feature_weight`, if given, is phase 2's instead: README, Case 1, steps 16-17).
    Given a `class_net` (the encoder's own pretrained classifier) and a U-Net built with `class_guidance` (its number
    of classes), both phases add `class_weight` * `ClassGuidanceLoss` through it (README, Case 1, step 19).
    `after_l1(learn)` runs between the phases; `epochs=0` skips phase 1 (e.g. to continue from a saved phase-1
    model); `phase1_cbs` are extra callbacks for phase 1 (e.g. `ProgressiveResizing`), `colour_cbs` for phase 2
    (e.g. another colour term: pass a `LossTerm` in both to use it throughout). `colour_dls`: DataLoaders for phase 2
    (`learn.dls` becomes them), e.g. the first of `hold_out(learn.dls, 2000)`, so that the colour phase never sees
    the images `calibrate_colourfulness` then fits the chroma gain on while phase 1 trains on all of them (README,
    Case 1, steps 16 and 19). Returns the recipe's own loss terms."""
    net_terms = network_terms(classifier, semantic_weight, feature_net, feature_weight, class_net, class_weight)
    if epochs: learn.fit_one_cycle(epochs, lr, cbs=list(phase1_cbs) + net_terms + ([WeightEMA()] if ema else []) +
                                   _logs(csv_logs, 'unet'))
    if after_l1 is not None: after_l1(learn)
    if colour_dls is not None: learn.dls = colour_dls
    if colour_feature_weight is not None:
        net_terms = network_terms(classifier, semantic_weight, feature_net, colour_feature_weight, class_net,
                                  class_weight)
    cf = ([ColourfulnessLoss(colourfulness_weight)] if colourfulness_weight else []) + \
         ([PSNRLoss(psnr_weight)] if psnr_weight else [])
    if colour_epochs:
        learn.fit_one_cycle(colour_epochs, colour_lr, cbs=net_terms + cf + list(colour_cbs) + ([WeightEMA()] if ema else []) +
                            _logs(csv_logs, 'colour'))
    return net_terms + cf


RECIPES = {'semantic': train_semantic_colour, 'seed': train_l1_then_gan}
