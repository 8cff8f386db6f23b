"""ONNX export of a colouriser's generator (the `[onnx]` extra: onnx to write it, onnxruntime to run it)."""
import warnings
from pathlib import Path

import torch
from fastai.torch_core import get_model

from .inference import load_colourizer

__all__ = ['export_onnx']


def export_onnx(learn, path, opset=17):
    """Export the generator (L -> ab) to ONNX with dynamic batch, height and width (needs the `onnx` package;
    run it with onnxruntime). Sizes that are a multiple of the encoder's stride reproduce torch exactly."""
    learn = load_colourizer(learn)
    G = get_model(learn.model).cpu().eval()
    h, w = getattr(G, 'img_size', (64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(G, (torch.zeros(2, 1, h, w),), str(path), input_names=['L'], output_names=['ab'],
                          dynamic_axes={'L': {0: 'batch', 2: 'height', 3: 'width'},
                                        'ab': {0: 'batch', 2: 'height', 3: 'width'}},
                          opset_version=opset, dynamo=False)
    return Path(path)
