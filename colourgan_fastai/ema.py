"""`WeightEMA`: an exponential moving average of G's weights (standard in modern GANs), as a fastai Callback."""
import torch
from fastai.callback.core import Callback
from fastai.torch_core import get_model

__all__ = ['WeightEMA']


class WeightEMA(Callback):
    """Exponential moving average of G's parameters and buffers: after each training step
    ema = decay * ema + (1 - decay) * w. Validation runs on the averaged weights, and after `fit` the model keeps
    them (`swap_at_end=True`), so `save`, `export` and `colourize` use the average. `decay=None` adapts it to the
    run: a half-life of a tenth of the run's batches."""
    order = 60

    def __init__(self, decay=None, swap_at_end=True):
        if decay is not None and not 0 < decay < 1: raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay, self.swap_at_end, self.ema = decay, swap_at_end, None

    def _state(self): return get_model(self.learn.model).state_dict()

    def before_fit(self):
        self.ema = {k: v.detach().clone() for k, v in self._state().items()}
        self._d = self.decay
        if self._d is None:
            n = max(1, self.n_epoch * len(self.dls.train))
            self._d = 0.5 ** (1 / max(1., n / 10))
        self._live, self._fitting = None, True

    @torch.no_grad()
    def after_step(self):
        for k, v in self._state().items():
            e = self.ema[k]
            if v.is_floating_point(): e.lerp_(v.detach(), 1 - self._d)
            else: e.copy_(v)

    def _swap_in(self):
        m = get_model(self.learn.model)
        self._live = {k: v.detach().clone() for k, v in m.state_dict().items()}
        m.load_state_dict(self.ema)

    def _swap_out(self):
        if self._live is not None: get_model(self.learn.model).load_state_dict(self._live)
        self._live = None

    def before_validate(self):
        if getattr(self, '_fitting', False): self._swap_in()      # only inside fit: `learn.validate()` is untouched

    def after_validate(self): self._swap_out()

    def after_fit(self):
        self._swap_out()
        self._fitting = False
        if self.swap_at_end and self.ema is not None: get_model(self.learn.model).load_state_dict(self.ema)
