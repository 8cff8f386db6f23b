"""The training recipe of the reference implementations: L1 pretraining of the U-Net, then GAN fine-tuning."""
from fastai.callback.progress import CSVLogger

from .gan import GANColourizer

__all__ = ['train_l1_then_gan']


def train_l1_then_gan(learn, epochs=20, gan_epochs=20, lr=1e-3, gan_lr=2e-4, lambda_l1=100., csv_logs=False,
                      after_l1=None, **gan_kwargs):
    """`fit_one_cycle(epochs, lr)` with L1, then `GANColourizer(lambda_l1, **gan_kwargs)` and
    `fit_one_cycle(gan_epochs, gan_lr)`. `csv_logs`: write each phase's log with fastai's CSVLogger to
    `unet_log.csv` / `gan_log.csv` in `learn.path`. `after_l1(learn)` runs between the phases (e.g. to save
    the U-Net-only model). Returns the GANColourizer (already attached)."""
    def cbs(phase): return [CSVLogger(f'{phase}_log.csv')] if csv_logs else []
    if epochs: learn.fit_one_cycle(epochs, lr, cbs=cbs('unet'))
    if after_l1 is not None: after_l1(learn)
    gan = GANColourizer(lambda_l1=lambda_l1, **gan_kwargs)
    learn.add_cb(gan)
    if gan_epochs: learn.fit_one_cycle(gan_epochs, gan_lr, cbs=cbs('gan'))
    return gan
