"""Test clips with known motion, made from still photos (no downloads): a pan and a zoom across a photo, a still
shot, a scene cut between two photos, optionally with film grain and brightness flicker. Each frame is the photo
seen through an affine map, so where every pixel of a frame was in the frame before is known exactly, which is what
`metrics.flicker` needs. Used by the tests and the bench; `write_clip` writes one as a film."""
from dataclasses import dataclass, field

import numpy as np

__all__ = ['Clip', 'make_clip', 'write_clip', 'CLIP_KINDS']

CLIP_KINDS = ('pan', 'zoom', 'still', 'cut')


@dataclass
class Clip:
    """`maps[t]` is the 2x3 affine map from frame t's pixel (x, y, 1) to the photo's coordinates (for a cut, to the
    photo shown at t); `cuts` are the frames that start a new scene. `frames(t)` renders frame t (uint8 RGB)."""
    photos: list
    maps: list
    scene: list                                   # which photo each frame shows
    size: tuple                                   # (w, h)
    grain: float = 0.
    flicker: float = 0.
    seed: int = 0
    cuts: set = field(default_factory=set)

    def __len__(self): return len(self.maps)

    def frame(self, t) -> np.ndarray:
        import cv2
        w, h = self.size
        img = cv2.warpAffine(self.photos[self.scene[t]], np.asarray(self.maps[t], np.float64), (w, h),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        if self.grain or self.flicker:
            rng = np.random.default_rng(self.seed * 100_003 + t)
            x = img.astype(np.float32) * (1 + self.flicker * rng.uniform(-1, 1))
            if self.grain: x += rng.normal(0, self.grain, (h, w, 1)).astype(np.float32)    # grain is lightness only
            img = np.clip(x + 0.5, 0, 255).astype(np.uint8)
        return img

    def frames(self):
        for t in range(len(self)): yield self.frame(t)

    def previous_position(self, t):
        """For each pixel of frame t, its (x, y) in frame t-1 under the true motion, and whether it was in view
        there (same scene, inside the frame)."""
        w, h = self.size
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        A, B = np.asarray(self.maps[t]), np.asarray(self.maps[t - 1])
        px, py = A[0, 0] * xs + A[0, 1] * ys + A[0, 2], A[1, 0] * xs + A[1, 1] * ys + A[1, 2]
        Bm = np.linalg.inv(np.vstack([B, [0, 0, 1]]))
        qx, qy = Bm[0, 0] * px + Bm[0, 1] * py + Bm[0, 2], Bm[1, 0] * px + Bm[1, 1] * py + Bm[1, 2]
        inview = (qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1) & (self.scene[t] == self.scene[t - 1])
        return qx.astype(np.float32), qy.astype(np.float32), inview


def _affine(scale, ox, oy): return [[scale, 0., ox], [0., scale, oy]]


def make_clip(photos, kind='pan', n=24, size=(160, 120), grain=0., flicker=0., seed=0) -> Clip:
    """A clip of `n` frames of `size` (w, h) from `photos` (uint8 RGB arrays, each at least 1.5x the frame):
    'pan' moves across the first photo (about a third of its free width over the clip), 'zoom' zooms in by a
    third around its centre, 'still' holds one view, 'cut' shows a slow pan of the first photo for half the clip and
    of the second for the rest. `grain`: sd of added noise (0-255 units); `flicker`: brightness changes of up to
    that fraction from frame to frame."""
    if kind not in CLIP_KINDS: raise ValueError(f"unknown clip kind {kind!r}; choose from {', '.join(CLIP_KINDS)}")
    w, h = size
    photos = [np.ascontiguousarray(p) for p in (photos if isinstance(photos, (list, tuple)) else [photos])]
    ph, pw = photos[0].shape[:2]
    s0 = min(pw / w, ph / h) / 1.5                 # the frame shows two thirds of the photo's short side
    maps, scene, cuts = [], [], set()
    for t in range(n):
        u = t / max(n - 1, 1)
        if kind == 'pan': maps.append(_affine(s0, (pw - w * s0) * (0.2 + 0.3 * u), (ph - h * s0) * (0.5 - 0.1 * u)))
        elif kind == 'zoom':
            s = s0 * (1 - u / 3)
            maps.append(_affine(s, (pw - w * s) / 2, (ph - h * s) / 2))
        elif kind == 'still': maps.append(_affine(s0, (pw - w * s0) / 2, (ph - h * s0) / 2))
        else:
            second = t >= n // 2 and len(photos) > 1
            p = photos[1] if second else photos[0]
            qh, qw = p.shape[:2]
            s = min(qw / w, qh / h) / 1.5
            maps.append(_affine(s, (qw - w * s) * (0.3 + 0.1 * u), (qh - h * s) / 2))
            if second and t == n // 2: cuts.add(t)
        scene.append(1 if kind == 'cut' and t >= n // 2 and len(photos) > 1 else 0)
    return Clip(photos, maps, scene, (w, h), grain, flicker, seed, cuts)


def write_clip(clip: Clip, path, fps=24, codec='lossless'):
    "Write `clip` as a film (FFV1 in MKV by default, lossless; 'h264' for MP4). Returns the path."
    import av
    from .video import VIDEO_CODECS
    spec = VIDEO_CODECS[codec]
    with av.open(str(path), 'w', format=spec['format']) as out:
        v = out.add_stream(spec['codec'], rate=fps)
        v.width, v.height, v.pix_fmt = clip.size[0], clip.size[1], spec['pix_fmt']
        v.options = dict(spec['options'])
        for img in clip.frames(): out.mux(v.encode(av.VideoFrame.from_ndarray(img, format='rgb24')))
        out.mux(v.encode(None))
    return path
