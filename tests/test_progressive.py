"""ProgressiveResizing: small training batches for the first epochs, full size after, validation always full size,
and the one-cycle schedule unchanged."""
import pytest
import torch
from fastai.callback.core import Callback

from colourgan_fastai import ProgressiveResizing, colour_learner, sample_photos_dls


class _Sizes(Callback):
    "Records (epoch, training?, side of the input) for every batch."
    order = 50
    def before_fit(self): self.seen = []
    def before_batch(self): self.seen.append((self.epoch, self.training, self.xb[0].shape[-1]))


@pytest.fixture(scope='module')
def small_dls(): return sample_photos_dls(size=16, n=96, bs=16)


def test_first_epochs_train_small_then_full_size_and_validation_stays_full(tiny_dls, small_dls):
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False)
    spy = _Sizes()
    learn.fit_one_cycle(3, 1e-3, cbs=[ProgressiveResizing(small_dls.train, epochs=2), spy])
    train = {(e, s) for e, t, s in spy.seen if t}
    assert train == {(0, 16), (1, 16), (2, 32)}
    assert {s for e, t, s in spy.seen if not t} == {32} and {e for e, t, s in spy.seen if not t} == {0, 1, 2}
    # a fastai-owned fit(cbs=...) callback: gone afterwards, so the next fit trains at full size
    spy2 = _Sizes(); learn.fit(1, 1e-4, cbs=spy2)
    assert {s for e, t, s in spy2.seen} == {32}


def test_one_cycle_schedule_is_the_same_as_without_it(tiny_dls, small_dls):
    lrs = []
    for cbs in ([], [ProgressiveResizing(small_dls.train, epochs=1)]):
        torch.manual_seed(0)
        learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False)
        learn.fit_one_cycle(2, 1e-3, cbs=cbs)
        lrs.append(learn.recorder.lrs)
    assert lrs[0] == lrs[1] and len(lrs[0]) == 2 * len(tiny_dls.train)


def test_refuses_a_loader_with_another_number_of_batches(tiny_dls):
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False)
    other = sample_photos_dls(size=16, n=48, bs=16).train
    with pytest.raises(ValueError, match='batches per epoch'):
        learn.fit(1, 1e-3, cbs=ProgressiveResizing(other, epochs=1))
    with pytest.raises(ValueError, match='epochs'): ProgressiveResizing(other, epochs=-1)
