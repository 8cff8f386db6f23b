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


# ---------------------------------------------------------------------------------------------- 8-bit fast paths
# Full-resolution work on 8-bit pictures (colourize, films): table lookups where the input has 256 values, float32
# in place elsewhere, and the gamut search only on the pixels out of gamut. Equal to the float64 maths within one
# unit of 8-bit RGB (tested).
_LUT_N = 1 << 14                                  # linear light -> 8-bit sRGB table: 0.1 unit of error at most
_LUT_L = 1 << 16                                  # Y -> L* table: 0.007 L* at most
_tables = {}


def _tables8():
    if not _tables:
        v = torch.arange(256, dtype=torch.float64) / 255
        lin = torch.where(v > 0.04045, ((v + 0.055) / 1.055).pow(2.4), v / 12.92)
        # each channel's part of Y, as an index into the Y -> L* table (the rounding's 0.5 in the first)
        _tables['Yq'] = [(lin * _XYZ_FROM_RGB[1, k] * (_LUT_L - 1) + (0.5 if k == 0 else 0)).float().numpy()
                         for k in range(3)]
        y = torch.arange(_LUT_L, dtype=torch.float64) / (_LUT_L - 1)
        _tables['L'] = (116 * torch.where(y > 0.008856, y.pow(1 / 3), 7.787 * y + 16 / 116) - 16).float().numpy()
        Yg = (_tables['Yq'][0] + _tables['Yq'][1] + _tables['Yq'][2]).clip(0, _LUT_L - 1)
        _tables['L_of_grey'] = _tables['L'][Yg.astype('uint16')]                        # R = G = B: one lookup
        s = _linear_to_srgb(torch.arange(_LUT_N, dtype=torch.float64) / (_LUT_N - 1))
        _tables['srgb8'] = (s * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return _tables


def lightness_u8(rgb):
    """L* (float32, H x W) of an 8-bit sRGB picture, a numpy array (H, W, 3) or (H, W) grey: three table lookups
    for Y (`np.take`, several times faster than fancy indexing) and one for L*."""
    import numpy as np
    t = _tables8()
    if rgb.ndim == 2: return np.take(t['L_of_grey'], rgb)
    Y = np.take(t['Yq'][0], rgb[..., 0])                      # Y * (table size - 1), the rounding's 0.5 included
    Y += np.take(t['Yq'][1], rgb[..., 1])
    Y += np.take(t['Yq'][2], rgb[..., 2])
    np.clip(Y, 0, _LUT_L - 1, out=Y)
    return np.take(t['L'], Y.astype(np.uint16))


def _finv_(f: Tensor) -> Tensor:
    "Lab's inverse companding in place, branch-free: max(f, t)^3 + (min(f, t) - t) / 7.787 with t = 6/29."
    t = 0.2068966
    low = f.clamp(max=t).sub_(t).div_(7.787)
    return f.clamp_(min=t).pow_(3).add_(low)


_LIN_LO, _LIN_HI = -7.7e-6, 1.00023                 # linear light whose sRGB lies within `_fit`'s 1e-4 of [0, 1]
_RGB_FROM_F = (_RGB_FROM_XYZ * _WHITE_D65).float()   # (X/Xn, Y/Yn, Z/Zn) companded back -> linear RGB
_Q = _LUT_N - 1                                      # lab_to_srgb8 works on linear light * _Q + 0.5: the table index


def _in_gamut(rgb: Tensor, lo=_LIN_LO, hi=_LIN_HI) -> Tensor:
    "Which linear-light RGB pixels (3, N) need no clipping (`_fit`'s tolerance; `lo`, `hi`: its bounds, scaled)."
    return (rgb.amin(0) >= lo) & (rgb.amax(0) <= hi)


def _largest_scale(good, n: int, iters: int) -> Tensor:
    """Per pixel, the largest chroma scale in [0, 1] for which `good(scale)` (N,) holds, by `iters` bisection steps
    (lo + 2^-k is the midpoint of step k: one addition and one choice a step)."""
    lo, d = torch.zeros(n), 1.
    for _ in range(iters):
        d /= 2
        s = lo + d
        lo = torch.where(good(s), s, lo)
    return lo


def _lab_to_linear_flat(L: Tensor, a: Tensor, b: Tensor, M: Tensor = _RGB_FROM_F, offset: float = 0.) -> Tensor:
    "Flat L*, a*, b* (N,) float32 -> linear-light RGB (3, N) (`M @ f + offset`: scaled where M is): one 3x3 product."
    fy = (L + 16) / 116
    f = torch.empty(3, len(L))
    torch.add(fy, a, alpha=1 / 500, out=f[0])
    f[1] = fy
    torch.add(fy, b, alpha=-1 / 200, out=f[2]).clamp_(min=0)
    rgb = torch.mm(M, _finv_(f))
    return rgb.add_(offset) if offset else rgb


def _fit_linear(L: Tensor, a: Tensor, b: Tensor, iters: int = 10, M: Tensor = _RGB_FROM_F, offset: float = 0.,
                lo: float = _LIN_LO, hi: float = _LIN_HI) -> Tensor:
    """`_fit`'s search for out-of-gamut pixels (N,), done on linear light (sRGB's curve is monotonic, so the same
    decisions without it): the largest chroma scale, by bisection, whose RGB needs no clipping -> linear RGB (3, N)
    (scaled as `_lab_to_linear_flat`'s). Y does not depend on the chroma: it is computed once, and each step
    recomputes X and Z only."""
    fy = (L + 16) / 116
    Yc = (_finv_(fy.clone())[None] * M[:, 1:2]).add_(offset)                         # Y's part of R, G, B
    MX, MZ = M[:, :1], M[:, 2:]
    a_, b_ = a / 500, b / -200

    def rgb_at(s):
        X = _finv_(torch.addcmul(fy, a_, s))
        Z = _finv_(torch.addcmul(fy, b_, s).clamp_(min=0))
        return torch.addcmul(Yc, MX, X).addcmul_(MZ, Z)
    return rgb_at(_largest_scale(lambda s: _in_gamut(rgb_at(s), lo, hi), len(L), iters))


def fit_ab_for_lightness(L: Tensor, ab: Tensor, margin: float = 0., iters: int = 10) -> Tensor:
    """ab (2, H, W, CIE units) with each pixel's chroma shrunk (hue kept, by bisection) until its colour is in the
    sRGB gamut at every lightness from L* - `margin` to L* + `margin` (clamped to 0..100; L* (H, W)): chroma that
    small changes of lightness (film grain, flicker) cannot push out of gamut. Both ends are checked: a colour in
    gamut at both is in gamut between them (not one exception among 2 million random Lab colours). Float32; the
    search only for the pixels out of gamut."""
    Ls = [(L - margin).clamp(0, 100).reshape(-1), (L + margin).clamp(0, 100).reshape(-1)] if margin else [L.reshape(-1)]
    a, b = ab[0].reshape(-1), ab[1].reshape(-1)
    everywhere = lambda Ls, a, b: torch.stack([_in_gamut(_lab_to_linear_flat(l, a, b)) for l in Ls]).all(0)
    bad = (~everywhere(Ls, a, b)).nonzero()[:, 0]
    if not len(bad): return ab
    Lb, ab_, bb = [l[bad] for l in Ls], a[bad], b[bad]
    scale = torch.ones_like(a)
    scale[bad] = _largest_scale(lambda s: everywhere(Lb, ab_ * s, bb * s), len(bad), iters)
    return ab * scale.view(1, *L.shape)


def lab_to_srgb8(L: Tensor, ab: Tensor, iters: int = 10) -> Tensor:
    """L* (H, W) and ab (2, H, W), float32 -> 8-bit sRGB (3, H, W) uint8 planes, each out-of-gamut pixel's chroma
    shrunk (as `fit_lab_in_gamut`) rather than its RGB clipped. Float32, one 3x3 product for the whole picture that
    gives the linear light -> sRGB table's index directly (scale and rounding folded in), the gamut search for the
    pixels out of gamut only, the curve a table lookup."""
    import numpy as np
    H, W_ = L.shape
    Lf, a, b = L.reshape(-1), ab[0].reshape(-1), ab[1].reshape(-1)
    M, lo, hi = _RGB_FROM_F * _Q, _LIN_LO * _Q + 0.5, _LIN_HI * _Q + 0.5
    rgb = _lab_to_linear_flat(Lf, a, b, M, 0.5)                                          # linear light * _Q + 0.5
    bad = (~_in_gamut(rgb, lo, hi)).nonzero()[:, 0]
    if len(bad): rgb[:, bad] = _fit_linear(Lf[bad], a[bad], b[bad], iters, M, 0.5, lo, hi)
    idx = rgb.clamp_(0.5, _Q + 0.5).to(torch.int32).numpy()
    return torch.from_numpy(np.take(_tables8()['srgb8'].numpy(), idx)).reshape(3, H, W_)
