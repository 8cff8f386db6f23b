"""ONNX export of a colouriser's generator (the `[onnx]` extra: onnx to write it, onnxruntime to run it)."""
import warnings
from pathlib import Path

import torch
from fastai.torch_core import get_model

from .inference import load_colourizer

__all__ = ['export_onnx']


def export_onnx(learn, path, opset=17):
    """Export the generator (L -> ab) to ONNX with dynamic batch, height and width (needs the `onnx` package;
    run it with onnxruntime). Sizes that are a multiple of the encoder's stride reproduce torch exactly.
    A colouriser that takes hints gets two more inputs, `hint_ab` (N, 2, H, W) and `hint_mask` (N, 1, H, W), in
    the network's units (ab / 110; mask 1 where a hint is, all zero for none: `hints.hint_maps` makes them)."""
    learn = load_colourizer(learn)
    G = get_model(learn.model).cpu().eval()
    h, w = getattr(G, 'img_size', (64, 64))
    names = ['L', 'hint_ab', 'hint_mask'] if G.takes_hints else ['L']
    args = tuple(torch.zeros(2, c, h, w) for c in (1, 2, 1)[:len(names)])
    axes = {n: {0: 'batch', 2: 'height', 3: 'width'} for n in names + ['ab']}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(G, args, str(path), input_names=names, output_names=['ab'], dynamic_axes=axes,
                          opset_version=opset, dynamo=False)
    return Path(path)
