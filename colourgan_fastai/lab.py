"""RGB <-> CIE L*a*b* in torch (sRGB, D65, 2 degree observer), batched and on any device.

The maths follows `skimage.color.rgb2lab` / `lab2rgb` so results match scikit-image, but runs on whole
batches on the GPU inside the data pipeline. The network-facing normalisation (L/50-1, ab/110) lives here
and only here: `encode_lab` / `decode_lab`.
"""
import torch
from torch import Tensor

__all__ = ['rgb_to_lab', 'lab_to_rgb', 'lightness', 'encode_lab', 'decode_lab', 'fit_lab_in_gamut', 'lab_to_rgb_in_gamut',
           'L_SCALE', 'L_SHIFT', 'AB_SCALE']

# sRGB primaries -> XYZ (the matrix scikit-image uses) and the D65 white point.
_XYZ_FROM_RGB = torch.tensor([[0.412453, 0.357580, 0.180423],
                              [0.212671, 0.715160, 0.072169],
                              [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = torch.tensor([0.95047, 1., 1.08883], dtype=torch.float64)

L_SCALE, L_SHIFT, AB_SCALE = 50., 1., 110.   # L/50 - 1 in [-1, 1]; ab/110 in about [-1, 1]


def _check_channels(x: Tensor, what: str):
    if not torch.is_tensor(x): raise TypeError(f"{what} must be a torch tensor, got {type(x).__name__}")
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"{what} must have shape (..., 3, H, W), got {tuple(x.shape)}")


def _mix(x: Tensor, m: Tensor) -> Tensor:
    "Apply the 3x3 matrix `m` over the channel axis (-3) of `x`."
    return torch.einsum('ij,...jhw->...ihw', m.to(x.device, x.dtype), x)


def _bcast(v: Tensor, x: Tensor) -> Tensor: return v.to(x.device, x.dtype).view(3, 1, 1)


def rgb_to_lab(x: Tensor) -> Tensor:
    "sRGB in [0,1], shape (..., 3, H, W) -> Lab with L in [0,100] and a,b in about [-110,110]."
    _check_channels(x, 'rgb_to_lab input')
    if not x.is_floating_point(): raise TypeError("rgb_to_lab expects a float tensor in [0, 1]")
    x = x.clamp(0, 1)
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055).pow(2.4), x / 12.92)
    xyz = _mix(lin, _XYZ_FROM_RGB) / _bcast(_WHITE_D65, x)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856).pow(1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def _lab_to_linear(lab: Tensor) -> Tensor:
    L, a, b = lab.unbind(-3)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, (fy - b / 200).clamp_min(0)], dim=-3)
    xyz = torch.where(f > 0.2068966, f.pow(3), (f - 16 / 116) / 7.787) * _bcast(_WHITE_D65, lab)
    return _mix(xyz, _RGB_FROM_XYZ)


def _linear_to_srgb(lin: Tensor) -> Tensor:
    return torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308).pow(1 / 2.4) - 0.055, 12.92 * lin)


def lab_to_rgb(lab: Tensor) -> Tensor:
    "Lab (L in [0,100]), shape (..., 3, H, W) -> sRGB clipped to [0,1]."
    _check_channels(lab, 'lab_to_rgb input')
    return _linear_to_srgb(_lab_to_linear(lab)).clamp(0, 1)


def _fit(lab: Tensor, iters: int = 10):
    """(Lab with each out-of-gamut pixel's chroma scaled down by bisection until its sRGB needs no clipping, its sRGB
    in [0,1]). One full conversion; only the pixels out of gamut (usually a few per cent) are searched."""
    _check_channels(lab, 'fit_lab_in_gamut input')
    def rgb_of(px, s=None):                       # px: (3, N) Lab pixels, s: (N,) chroma scales -> (3, N) sRGB
        if s is not None: px = torch.cat([px[:1], px[1:] * s], 0)
        return _linear_to_srgb(_lab_to_linear(px[..., None]))[..., 0]
    def ok(rgb): return ((rgb >= -1e-4) & (rgb <= 1 + 1e-4)).all(0)
    shape = lab.movedim(-3, 0).shape
    flat = lab.movedim(-3, 0).reshape(3, -1)
    rgb = rgb_of(flat)
    bad = ~ok(rgb)
    if bool(bad.any()):
        px = flat[:, bad]
        lo, hi = px.new_zeros(px.shape[1]), px.new_ones(px.shape[1])
        for _ in range(iters):
            mid = (lo + hi) / 2
            good = ok(rgb_of(px, mid))
            lo, hi = torch.where(good, mid, lo), torch.where(good, hi, mid)
        flat = flat.clone()
        flat[1:, bad] = px[1:] * lo
        rgb[:, bad] = rgb_of(flat[:, bad])
    back = lambda t: t.reshape(shape).movedim(0, -3)
    return back(flat), back(rgb.clamp_(0, 1))


def fit_lab_in_gamut(lab: Tensor, iters: int = 10) -> Tensor:
    """Scale each out-of-gamut pixel's chroma down (bisection) until its sRGB colour needs no clipping.

    Clipping RGB changes lightness; shrinking chroma keeps L and hue exactly, and grey (ab=0) is always
    in gamut, so the search always succeeds. Only the pixels out of gamut are searched (usually a few per cent)."""
    return _fit(lab, iters)[0]


def lab_to_rgb_in_gamut(lab: Tensor, iters: int = 10) -> Tensor:
    "`lab_to_rgb(fit_lab_in_gamut(lab))` with one full-resolution conversion instead of two."
    return _fit(lab, iters)[1]


def lightness(x: Tensor) -> Tensor:
    "sRGB in [0,1], shape (..., 3, H, W) -> L* in [0,100], shape (..., 1, H, W): `rgb_to_lab`'s L, computed alone."
    _check_channels(x, 'lightness input')
    x = x.clamp(0, 1)
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055).pow(2.4), x / 12.92)
    y = _mix(lin, _XYZ_FROM_RGB)[..., 1:2, :, :] / _WHITE_D65[1]
    return 116 * torch.where(y > 0.008856, y.clamp_min(0.008856).pow(1 / 3), 7.787 * y + 16 / 116) - 16


def encode_lab(rgb: Tensor):
    "sRGB batch in [0,1] -> (L, ab) normalised for the network: L/50-1 (1 channel), ab/110 (2 channels)."
    lab = rgb_to_lab(rgb)
    return lab[..., :1, :, :] / L_SCALE - L_SHIFT, lab[..., 1:, :, :] / AB_SCALE


def decode_lab(L: Tensor, ab: Tensor) -> Tensor:
    "Inverse of `encode_lab`: normalised (L, ab) -> sRGB in [0,1]."
    L, ab = torch.as_tensor(L), torch.as_tensor(ab)
    lab = torch.cat([(L.float() + L_SHIFT) * L_SCALE, ab.float() * AB_SCALE], dim=-3)
    return lab_to_rgb(lab)
