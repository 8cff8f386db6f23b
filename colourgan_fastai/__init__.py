"""colourgan_fastai: automatic image colourisation with a conditional GAN, the fastai way."""
__version__ = '0.1.0'
from torchvision.models import resnet18, resnet34, resnet50, mobilenet_v2
from .lab import *
from .cache import *
from .data import *
from .precision import *
from .models import *
from .gan import *
from .metrics import *
from .recipe import *
from .inference import *
from .distributed import *
