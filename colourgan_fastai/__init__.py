"""colourgan_fastai: automatic image colourisation with a conditional GAN, the fastai way.

`from colourgan_fastai import *` brings what a user calls (`__all__`); everything else stays importable from its
module (e.g. `colourgan_fastai.lab.encode_lab`)."""
__version__ = '0.2.0'
import warnings as _warnings
with _warnings.catch_warnings():   # deprecation notices that fastai's own imports raise (pandas, torch.jit): not ours
    _warnings.filterwarnings('ignore', message=r".*(mode\.chained_assignment|torch\.jit\.script)")
    import fastai.vision.all as _fastai_vision  # noqa: F401
from .lab import rgb_to_lab, lab_to_rgb
from .data import (cifar10_dls, stl10_dls, imagenette_dls, colour_dls, sample_photos_dls, dls_from_folder, hold_out,
                   LabSplit)
from .encoders import resnet20_cifar, encoder_classifier
from .models import ColourUnet, PatchDiscriminator, use_flip_average
from .learner import ColourLearner, colour_learner
from .gan import GANColourizer
from .losses import LossTerm, FeatureLoss, ClassGuidanceLoss, SemanticLoss, ColourfulnessLoss, PSNRLoss
from .ema import WeightEMA
from .progressive import ProgressiveResizing
from .recipe import Recipe, train, train_l1_then_gan, train_semantic_colour
from .calibration import calibrate_colourfulness
from .metrics import PSNR, SSIM, Colourfulness, DeltaColourfulness, SpuriousColour, colour_metrics, score_predictions
from .inference import colourize, colourize_many, load_colourizer
from .folders import colourize_folder
from .video import colourize_video
from .onnx import export_onnx
from .distributed import cpu_distrib_ctx

__all__ = ['rgb_to_lab', 'lab_to_rgb',
           'cifar10_dls', 'stl10_dls', 'imagenette_dls', 'colour_dls', 'sample_photos_dls', 'dls_from_folder',
           'hold_out', 'LabSplit',
           'resnet20_cifar', 'encoder_classifier', 'ColourUnet', 'PatchDiscriminator', 'use_flip_average',
           'ColourLearner', 'colour_learner',
           'GANColourizer',
           'LossTerm', 'FeatureLoss', 'ClassGuidanceLoss', 'SemanticLoss', 'ColourfulnessLoss', 'PSNRLoss', 'WeightEMA',
           'ProgressiveResizing',
           'Recipe', 'train', 'train_l1_then_gan', 'train_semantic_colour', 'calibrate_colourfulness',
           'PSNR', 'SSIM', 'Colourfulness', 'DeltaColourfulness', 'SpuriousColour', 'colour_metrics', 'score_predictions',
           'colourize', 'colourize_many', 'colourize_folder', 'colourize_video', 'load_colourizer', 'export_onnx',
           'cpu_distrib_ctx']
