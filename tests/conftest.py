import os
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / 'shared'
HINT_MODEL_SEED = 2


@pytest.fixture(scope='session')
def shared():
    "../shared (real CIFAR-10 and weights): skipped in a user's clone, an error in CI (COLOURGAN_REQUIRE_SHARED=1)."
    if not SHARED.is_dir():
        msg = f"{SHARED} (data and weights) is absent"
        if os.environ.get('COLOURGAN_REQUIRE_SHARED'): pytest.fail(msg + " but CI requires it")
        pytest.skip(msg)
    return SHARED


@pytest.fixture(autouse=True)
def _seed():
    from fastai.torch_core import set_seed
    set_seed(0)
    torch.set_num_threads(2)


@pytest.fixture(scope='session')
def tiny_dls():
    from colourgan_fastai import sample_photos_dls
    return sample_photos_dls(size=32, n=96, bs=16)


@pytest.fixture
def tiny_learn(tiny_dls):
    from colourgan_fastai import colour_learner
    return colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False)


@pytest.fixture(scope='session')
def model_file(tmp_path_factory, tiny_dls):
    "A briefly trained colouriser written by learn.export (some colour, so that the gamut fix has work to do)."
    from colourgan_fastai import colour_learner
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False)
    learn.fit(2, 3e-3)
    p = tmp_path_factory.mktemp('model') / 'g.pkl'
    learn.export(p)
    return p


@pytest.fixture(scope='session')
def hint_model_file(tmp_path_factory):
    """A colouriser trained briefly with hints, written by learn.export. It trains on DataLoaders of its own, seeded
    here, so the model is the same whichever tests ran before (a shared loader's shuffling order depends on them)."""
    from fastai.torch_core import set_seed
    from colourgan_fastai import colour_learner, sample_photos_dls
    set_seed(HINT_MODEL_SEED)
    learn = colour_learner(sample_photos_dls(size=32, n=96, bs=16), arch='resnet20_cifar', pretrained=False, hints=True)
    learn.fit_one_cycle(20, 1e-2)
    p = tmp_path_factory.mktemp('hints') / 'hinted.pkl'
    learn.export(p)
    return p
