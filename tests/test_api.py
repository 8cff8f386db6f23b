"""The public API: a small explicit `__all__`, and nothing of fastai or torchvision dragged into the user's namespace."""
import subprocess
from pathlib import Path

import pytest

import colourgan_fastai


def test_star_import_brings_the_public_names_and_no_fastai_or_torchvision_builders():
    ns = {}
    exec('from colourgan_fastai import *', ns)
    names = {k for k in ns if not k.startswith('__')}
    assert names == set(colourgan_fastai.__all__) and 30 <= len(names) <= 50
    assert not {'fastai', 'resnet18', 'resnet34', 'mobilenet_v2', 'torch', 'nn', 'Learner'} & names
    for name in ('colourize', 'colour_learner', 'GANColourizer', 'Recipe', 'train', 'cifar10_dls', 'PSNR'):
        assert name in names
    assert len(set(colourgan_fastai.__all__)) == len(colourgan_fastai.__all__)


def test_colour_learner_passes_learners_own_arguments_through(tiny_dls, tmp_path):
    from fastai.callback.core import Callback
    from colourgan_fastai import colour_learner
    class Marker(Callback): pass
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, path=tmp_path, model_dir='ckpt',
                           cbs=[Marker()], wd=0.25)
    assert learn.path == tmp_path and learn.model_dir == 'ckpt' and learn.wd == 0.25 and hasattr(learn, 'marker')
    assert learn.save('m') == tmp_path / 'ckpt' / 'm.pth'
    import inspect
    assert {'cbs', 'path', 'model_dir', 'wd'} <= set(inspect.signature(colour_learner).parameters)   # @delegates


def test_what_the_demo_writes_is_ignored_by_git():
    root = Path(__file__).resolve().parents[1]
    if not (root / '.git').exists(): pytest.skip('not a git checkout')
    from colourgan_fastai.cli import build_parser
    a = build_parser().parse_args(['demo'])
    out = subprocess.run(['git', 'check-ignore', a.out, a.model], cwd=root, capture_output=True, text=True)
    assert out.stdout.split() == [a.out, a.model], out.stdout
