"""Progressive resizing: the first epochs of a fit train on smaller images (cheaper per batch), the rest at full size.

fastai's classic speed trick (fastbook, chapter 7) is usually two `fit` calls with new DataLoaders in between; here it
is a Callback, so one `fit_one_cycle` keeps one learning-rate schedule across the switch and any recipe can take it:

    small = imagenette_dls(data, size=64).train                 # the same training images at 64 px
    learn.fit_one_cycle(8, 1e-3, cbs=ProgressiveResizing(small, epochs=4))

Only *training* batches come from the small DataLoader; every validation pass uses the Learner's own (full-size)
validation set, so curves before and after the switch compare. A DynamicUnet takes any input size (its decoder
resizes to the input), and the colour losses and metrics are per pixel or per image, so nothing else changes.
"""
from fastai.callback.core import Callback

__all__ = ['ProgressiveResizing']


class ProgressiveResizing(Callback):
    """Train epochs `0 .. epochs-1` of each fit on `small_dl` (e.g. the same training images at a smaller size), the
    remaining epochs on the Learner's own training DataLoader. Best with as many batches per epoch as the full-size
    loader (same images and batch size): the one-cycle schedule then advances exactly as without it."""
    order = -5                       # before the callbacks that read `learn.dl` in before_train

    def __init__(self, small_dl, epochs):
        if epochs < 0: raise ValueError(f"epochs must be >= 0, got {epochs}")
        self.small_dl, self.epochs = small_dl, epochs

    def before_fit(self):
        if len(self.small_dl) != len(self.dls.train):
            raise ValueError(f"ProgressiveResizing: the small DataLoader has {len(self.small_dl)} batches per epoch, "
                             f"the Learner's {len(self.dls.train)}; give it the same images and batch size")

    def before_train(self):
        # Learner._do_epoch_train sets `dl` to dls.train, then runs before_train, then counts and iterates `dl`
        if self.epoch < self.epochs: self.learn.dl = self.small_dl
