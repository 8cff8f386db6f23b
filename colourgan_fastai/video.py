"""Films: decode, colourise, make the chroma steady over time, encode; streamed, never all in memory.

The `[video]` extra: PyAV (its wheels carry FFmpeg, so nothing else is installed; frame-exact decoding, encoding
and copying the audio packets untouched) and opencv-python-headless (Farneback optical flow).

Per frame, ab is predicted at the render size, as for photos. `SteadyChroma` then carries the previous frame's ab
forward along the optical flow between the two frames' lightness and blends it with the new prediction, only where
the flow explains the new frame (a reset at scene cuts, fresh prediction where something new comes into view), so
the same coat keeps its colour instead of flickering. The chroma is put on each frame's own full-resolution L.
The output keeps the frame rate, the frame timestamps (so the frame count), the size and every audio track (copied;
re-encoded to AAC only where the container cannot hold the original codec).
"""
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fastai.torch_core import get_model
from fastprogress.fastprogress import progress_bar

from .inference import GreyImage, load_colourizer, render_L, _compose, _predict, _default_render_size, check_positive
from .lab import AB_SCALE, fit_ab_for_lightness

__all__ = ['colourize_video', 'SteadyChroma', 'film_info', 'is_video', 'VIDEO_EXTS', 'VIDEO_CODECS', 'video_output_name']

VIDEO_EXTS = frozenset({'.mp4', '.m4v', '.mov', '.mkv', '.avi', '.webm', '.mpg', '.mpeg', '.wmv', '.flv', '.ogv',
                        '.ts', '.mts', '.3gp'})
# h264: every player opens it (yuv420p; crf 16 keeps L within a few units); lossless: FFV1 in Matroska, RGB exact.
VIDEO_CODECS = {'h264': dict(codec='libx264', pix_fmt='yuv420p', options={'crf': '16', 'preset': 'superfast'},
                             ext='.mp4', format='mp4'),
                'lossless': dict(codec='ffv1', pix_fmt='bgr0', options={'level': '3'}, ext='.mkv', format='matroska')}


def _av():
    try:
        import av
    except ImportError:
        raise ImportError("films need PyAV and OpenCV: pip install 'colourgan_fastai[video]'") from None
    return av


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ImportError("films need PyAV and OpenCV: pip install 'colourgan_fastai[video]'") from None
    return cv2


def is_video(path) -> bool: return Path(path).suffix.lower() in VIDEO_EXTS


def video_output_name(path: Path, codec='h264') -> str:
    "A film's output name: its stem with the codec's container (.mp4 for h264, .mkv for lossless)."
    if codec not in VIDEO_CODECS: raise ValueError(f"unknown video codec {codec!r}; choose from {', '.join(VIDEO_CODECS)}")
    return path.stem + VIDEO_CODECS[codec]['ext']


class SteadyChroma:
    """Steady chroma over time. Call it on each frame in order with the frame's L* (h, w) and its predicted ab
    (2, h', w'), at the render size or smaller (ab is resized to L's size: `scale` x the render size carries the
    chroma on a finer grid, so slow motion does not make it swim between render pixels); it returns the ab to use:
    on the first frame and the first of each new scene the prediction as it is (frame by frame's exactly), on the
    others at L's size. First the chroma is fitted into the sRGB gamut at L* and at L* +- `margin` (as the full-resolution
    step would, chroma shrunk, hue and L kept), so grain and brightness changes of a few L* units cannot push it out
    of gamut and make it shimmer frame to frame. Then the previous output is warped to the new frame along Farneback
    optical flow (from the new frame back to the old, on brightness-normalised L) and blended:
    ab = w * warped + (1 - w) * predicted, with w = `keep` where the warped old L* matches the new L* (within
    `reliable` L* units, falling off smoothly beyond) and 0 where it does not or where the point came from outside
    the frame. A frame whose median mismatch is over `cut` is a new scene: the prediction is taken as it is.
    Carrying moves the frame's colourfulness away from the prediction's: each warp resamples the chroma, which blurs
    it where the picture grows (a zoom), and colours kept from earlier frames can be richer or poorer than the new
    prediction. So the blend is scaled to the spread of the frame's own prediction (the standard deviations of a and
    b over the frame), by a factor smoothed over frames with `hold_colour` (0.9: about the last ten frames, so that
    grain does not make it flicker; None: no scaling). `reset()` forgets the past (a new film)."""
    def __init__(self, keep=0.95, reliable=8., cut=10., margin=3., scale=2, hold_colour=0.9):
        if hold_colour is not None and not 0 <= hold_colour < 1:
            raise ValueError(f"hold_colour must be in [0, 1) or None, got {hold_colour}")
        self.keep, self.reliable, self.cut, self.margin, self.scale = keep, reliable, cut, margin, int(scale)
        self.hold_colour = hold_colour
        self.reset()

    def reset(self): self.prev_L, self.prev_small, self.prev_ab, self.cuts, self.gain = None, None, None, 0, 1.

    @staticmethod
    def _spread(ab): return float(ab.reshape(2, -1).std(1).sum())

    def _hold(self, out, predicted):
        "`out` scaled towards `predicted`'s spread of chroma, the scale smoothed over frames (see the class docstring)."
        if self.hold_colour is None: return out
        ratio = float(np.clip(self._spread(predicted) / max(self._spread(out), 1e-6), 0.8, 1.25))
        self.gain = self.hold_colour * self.gain + (1 - self.hold_colour) * ratio
        return out * self.gain

    @staticmethod
    def _norm(L):
        "L* with its mean and spread taken out: brightness flicker and fades are not motion."
        return (L - L.mean()) / (L.std() + 1e-3) * 20.

    def frame(self, grey, ab):
        "The ab to use for `grey` (a `GreyImage`) whose prediction is `ab`: its L* at `scale` x ab's size, then as a call."
        return self(render_L(grey, *(self.scale * d for d in ab.shape[-2:])), ab)

    def _fitted(self, L, ab):
        "ab (2, h, w) resized to L's size and fitted into the gamut at L* and L* +- margin (`lab.fit_ab_for_lightness`)."
        ab = torch.as_tensor(ab).float()
        if tuple(ab.shape[-2:]) != L.shape:
            ab = F.interpolate(ab[None], size=L.shape, mode='bilinear', align_corners=False)[0]
        return (fit_ab_for_lightness(torch.from_numpy(L), ab * AB_SCALE, self.margin, iters=6) / AB_SCALE).numpy()

    def __call__(self, L, ab):
        cv2 = _cv2()
        L = np.ascontiguousarray(L, np.float32)
        ab_np = self._fitted(L, ab)
        n = self._norm(L)
        (h, w), (ah, aw) = L.shape, ab.shape[-2:]
        k = h // ah if h % ah == 0 and w == aw * (h // ah) else 1          # L's grid over the prediction's
        g8 = lambda a: np.clip(a * 2 + 128, 0, 255).astype(np.uint8)
        small = g8(n if k == 1 else cv2.resize(n, (w // k, h // k), interpolation=cv2.INTER_AREA))
        new_scene = self.prev_L is None
        if new_scene: out = ab_np
        else:                              # the flow at the render size is as good (docs/experiments/films.md)
            flow = cv2.calcOpticalFlowFarneback(small, self.prev_small, None, 0.5, 3, 9, 3, 5, 1.1, 0)
            if k > 1: flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * k
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            mx, my = gx + flow[..., 0], gy + flow[..., 1]
            warp = lambda a: cv2.remap(a, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            err = np.abs(warp(self.prev_L) - n)
            if np.median(err) > self.cut:
                out, new_scene = ab_np, True; self.cuts += 1; self.gain = 1.
            else:
                inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
                wgt = self.keep * np.exp(-(err / self.reliable) ** 2) * inside
                carried = np.stack([warp(c) for c in self.prev_ab])
                out = self._hold(wgt * carried + (1 - wgt) * ab_np, ab_np)
        self.prev_L, self.prev_small, self.prev_ab = n, small, out.astype(np.float32)
        return torch.as_tensor(ab).float().clone() if new_scene else torch.from_numpy(self.prev_ab.copy())


def _open_film(path):
    "(the opened container, its first video stream); a ValueError naming the file where it cannot be read."
    try:
        c = _av().open(str(path))
        return c, c.streams.video[0]
    except Exception as e:
        raise ValueError(f"{path} cannot be decoded as a film: {type(e).__name__}: {e}") from None


def film_info(path):
    "(width, height, seconds) of a film, from its header; a ValueError naming it where it cannot be read."
    c, v = _open_film(path)
    with c:
        secs = float(c.duration / 1e6) if c.duration else float((v.duration or 0) * (v.time_base or 0))
        return v.codec_context.width, v.codec_context.height, secs


def _open_output(av, tmp, fmt, spec, in_v, W, H, audio_in):
    out = av.open(str(tmp), 'w', format=fmt)
    pix_fmt = spec['pix_fmt']
    if pix_fmt == 'yuv420p' and (W % 2 or H % 2): pix_fmt = 'yuv444p'     # 4:2:0 needs even sides
    v = out.add_stream(spec['codec'], rate=in_v.average_rate or in_v.guessed_rate or 25)
    v.width, v.height, v.pix_fmt, v.time_base = W, H, pix_fmt, in_v.time_base
    v.options = dict(spec['options'])
    audio = {}
    for a in audio_in:
        try: audio[a.index] = (out.add_stream_from_template(a), None)
        except Exception:                                                  # the container cannot hold this codec
            enc = out.add_stream('aac', rate=a.rate or 48000)
            audio[a.index] = (enc, a)
    return out, v, audio


def _frame_count(in_v):
    if in_v.frames: return int(in_v.frames)
    if in_v.duration and in_v.time_base and in_v.average_rate:
        return int(round(float(in_v.duration * in_v.time_base * in_v.average_rate)))
    return None


def colourize_video(learn, src, dst, render_size=None, codec='h264', steady=True, bs=8, overwrite=False,
                    display=True) -> Path:
    """Colourise the film `src` into `dst` (a file; or a folder, where it gets `video_output_name`), streamed frame by
    frame: chroma at `render_size` (default: the model's training size), made steady over time (`SteadyChroma`;
    `steady=False`: frame by frame), put on each frame's full-resolution L. `codec`: 'h264' (MP4, plays
    everywhere; L within a few units of the input's) or 'lossless' (FFV1 in MKV). Frame rate, timestamps, size and
    audio are kept. The output appears under its name only when complete (a temporary file beside it until then);
    an existing output is kept unless `overwrite`; the input is never written. A film that cannot be decoded, or a
    frame that fails, raises a ValueError naming the file and the frame. Returns the output path."""
    from .folders import TMP_SUFFIX, _umask, _remove_stale_tmp     # the folder job's atomic-write conventions
    av = _av(); _cv2()
    check_positive('bs', bs); check_positive('render_size', render_size, 8)
    src = Path(src)
    if not src.is_file(): raise FileNotFoundError(f"{src} not found")
    video_output_name(src, codec)                                        # a clear error for an unknown codec
    spec = VIDEO_CODECS[codec]
    dst = Path(dst)
    if dst.is_dir() or not dst.suffix: dst = dst / video_output_name(src, codec)
    if dst.resolve() == src.resolve(): raise ValueError(f"{dst} is the input: inputs are never written")
    if dst.exists() and not overwrite: raise FileExistsError(f"{dst} exists; pass overwrite=True to redo it")
    learn = load_colourizer(learn)
    G = get_model(learn.model)
    render_size = render_size or _default_render_size(G)
    inp, in_v = _open_film(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(dst)                                               # a killed run's leftovers
    fd, tmp = tempfile.mkstemp(prefix=f'.{dst.name}.', suffix=TMP_SUFFIX, dir=dst.parent)
    os.close(fd)
    steadier = SteadyChroma() if steady else None
    try:
        W, H = in_v.codec_context.width, in_v.codec_context.height
        audio_in = list(inp.streams.audio)
        out, v, audio = _open_output(av, tmp, spec['format'], spec, in_v, W, H, audio_in)
        with out:
            total = _frame_count(in_v)
            bar = progress_bar(range(total or 10 ** 9), display=display, total=total)
            bar.comment = src.name
            it, k, batch = iter(bar), 0, []

            def flush():
                nonlocal k
                greys = [GreyImage.create(f.to_ndarray(format='rgb24')) for f in batch]
                try: abs_ = _predict(G, greys, render_size, bs)
                except Exception as e: raise ValueError(f"{src}: frames {k}-{k + len(batch) - 1}: {e}") from e
                for f, g, ab in zip(batch, greys, abs_):
                    try:
                        if steadier is not None: ab = steadier.frame(g, ab)
                        rgb = np.asarray(_compose(g, ab))
                        nf = av.VideoFrame.from_ndarray(rgb, format='rgb24')
                        nf.pts, nf.time_base = f.pts, f.time_base
                        out.mux(v.encode(nf))
                    except Exception as e: raise ValueError(f"{src}: frame {k}: {type(e).__name__}: {e}") from e
                    k += 1
                    next(it, None)
                batch.clear()

            for packet in inp.demux(in_v, *audio_in):
                if packet.stream.type == 'audio':
                    enc, a_in = audio[packet.stream.index]
                    if a_in is None:
                        if packet.dts is None: continue
                        packet.stream = enc; out.mux(packet)
                    else:
                        for af in packet.decode(): af.pts = None; out.mux(enc.encode(af))
                    continue
                try: frames = packet.decode()
                except Exception as e:
                    raise ValueError(f"{src}: frame {k + len(batch)} cannot be decoded: {type(e).__name__}: {e}") from None
                for f in frames:
                    batch.append(f)
                    if len(batch) == bs: flush()
            if batch: flush()
            out.mux(v.encode(None))
            for enc, a_in in audio.values():
                if a_in is not None: out.mux(enc.encode(None))
            if k == 0: raise ValueError(f"{src} holds no frame that can be decoded")
        inp.close()
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dst)
    except BaseException:
        inp.close()
        if os.path.exists(tmp): os.remove(tmp)
        raise
    return dst
