"""colourgan_fastai: automatic image colourisation with a conditional GAN, the fastai way."""
__version__ = '0.1.0'
import warnings as _warnings
with _warnings.catch_warnings():   # deprecation notices that fastai's own imports raise (pandas, torch.jit): not ours
    _warnings.filterwarnings('ignore', message=r".*(mode\.chained_assignment|torch\.jit\.script)")
    import fastai.vision.all  # noqa: F401
from torchvision.models import resnet18, resnet34, resnet50, mobilenet_v2
from .lab import *
from .images import *
from .cache import *
from .data import *
from .precision import *
from .encoders import *
from .models import *
from .learner import *
from .gan import *
from .metrics import *
from .losses import *
from .progressive import *
from .recipe import *
from .calibration import *
from .inference import *
from .distributed import *
