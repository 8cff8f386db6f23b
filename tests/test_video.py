"""Films: streamed colourisation with steady colours, the film's rate, frames, size and audio kept, atomic output,
clear errors; measured on clips with known motion made from still photos (clips.py)."""
import numpy as np
import pytest
import skimage.color as skc
import skimage.data
import torch

av = pytest.importorskip('av', reason="the [video] extra (PyAV) is not installed")
pytest.importorskip('cv2', reason="the [video] extra (opencv-python-headless) is not installed")

from colourgan_fastai import colourize_video, colourize_folder                      # noqa: E402
from colourgan_fastai.clips import make_clip, write_clip                              # noqa: E402
from colourgan_fastai.metrics import flicker, psnr                                    # noqa: E402

PHOTOS = [skimage.data.astronaut(), skimage.data.coffee()]


def _frames(path):
    with av.open(str(path)) as c: return [f.to_ndarray(format='rgb24') for f in c.decode(video=0)]


def _L(a): return skc.rgb2lab(a / 255.)[..., 0]


def _with_audio(path, n=12, fps=12, size=(96, 72)):
    "A short film with an AAC sine-wave track."
    clip = make_clip(PHOTOS, 'pan', n=n, size=size)
    with av.open(str(path), 'w') as out:
        v = out.add_stream('libx264', rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], 'yuv420p'
        a = out.add_stream('aac', rate=22050)
        a.layout = 'mono'
        t = np.arange(int(22050 * n / fps)) / 22050
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for k in range(0, wave.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, k:k + 1024]), format='fltp', layout='mono')
            af.sample_rate = 22050
            out.mux(a.encode(af))
        out.mux(a.encode(None))
        for img in clip.frames(): out.mux(v.encode(av.VideoFrame.from_ndarray(img, format='rgb24')))
        out.mux(v.encode(None))
    return clip


def test_steady_colours_halve_flicker_under_grain_keep_quality_and_restart_at_a_cut(tiny_dls, tmp_path):
    from colourgan_fastai import colour_learner
    torch.manual_seed(0)                              # an untrained U-Net: the same colouriser on every run
    model_file = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False)
    T = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    for kind in ('pan', 'cut', 'still'):                      # grain and brightness flicker on each
        clip = make_clip(PHOTOS, kind, n=16, size=(128, 96), grain=3, flicker=0.03)
        src = write_clip(clip, tmp_path / f'{kind}.mkv')
        runs = {s: _frames(colourize_video(model_file, src, tmp_path / f'{kind}_{s}.mkv', codec='lossless', steady=s,
                                           display=False)) for s in (False, True)}
        assert len(runs[True]) == len(clip)
        fl = {s: np.mean([v for v in flicker(f, clip) if v is not None]) for s, f in runs.items()}
        assert fl[True] < 0.5 * fl[False], (kind, fl)                      # at most half the flicker along the motion
        truth = [clip.frame(t) for t in range(len(clip))]
        q = {s: np.mean([psnr(T(a), T(b)).item() for a, b in zip(f, truth)]) for s, f in runs.items()}
        assert q[True] > q[False] - 0.2                                    # and no worse per frame
        for k in clip.cuts:                                                # a new scene starts from its own colours
            ab = lambda a: skc.rgb2lab(a / 255.)[..., 1:]
            assert np.abs(ab(runs[True][k]) - ab(runs[False][k])).max() < 1.0


def test_steadying_keeps_the_frames_as_colourful_as_their_own_predictions_on_a_zoom_and_a_pan():
    "Carrying chroma along the flow blurs it; the frames must stay as colourful as each frame's own prediction."
    import torch.nn.functional as F
    from colourgan_fastai.inference import GreyImage, _compose
    from colourgan_fastai.lab import AB_SCALE, rgb_to_lab
    from colourgan_fastai.metrics import colourfulness
    from colourgan_fastai.video import SteadyChroma
    cf = lambda img: colourfulness(torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None] / 255.).item()
    for kind in ('zoom', 'pan'):
        clip = make_clip(PHOTOS, kind, n=16, size=(128, 96))
        change = {}
        for hold in (None, 0.9):
            steadier, diffs = SteadyChroma(hold_colour=hold), []
            for t in range(len(clip)):                       # a perfect predictor: the truth's chroma, at 32 x 24
                rgb = clip.frame(t)
                grey = GreyImage.create(rgb)
                ab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)[1:] / AB_SCALE
                ab = F.interpolate(ab[None], size=(24, 32), mode='area')[0]
                diffs.append(cf(_compose(grey, steadier.frame(grey, ab))) - cf(_compose(grey, ab)))
            change[hold] = np.mean(diffs)
        assert change[None] < -1.5, (kind, change)           # carrying alone loses colour ...
        assert abs(change[0.9]) < 0.5, (kind, change)        # ... which holding the prediction's spread gives back


def test_steady_colour_settings_are_checked():
    from colourgan_fastai.video import SteadyChroma
    with pytest.raises(ValueError, match='hold_colour'): SteadyChroma(hold_colour=1.5)


def test_a_film_keeps_its_rate_frames_size_audio_and_lightness(model_file, tmp_path):
    src = tmp_path / 'home movie.mp4'
    _with_audio(src)
    out = colourize_video(model_file, src, tmp_path / 'out', display=False)
    assert out == tmp_path / 'out' / 'home movie.mp4'
    with av.open(str(src)) as a, av.open(str(out)) as b:
        va, vb = a.streams.video[0], b.streams.video[0]
        assert vb.average_rate == va.average_rate and (vb.width, vb.height) == (va.width, va.height)
        assert vb.codec_context.name == 'h264' and vb.pix_fmt == 'yuv420p'       # plays everywhere
        assert len(b.streams.audio) == 1 and b.streams.audio[0].codec_context.name == 'aac'
        assert abs(float(b.streams.audio[0].duration * b.streams.audio[0].time_base) -
                   float(a.streams.audio[0].duration * a.streams.audio[0].time_base)) < 0.05
    fa, fb = _frames(src), _frames(out)
    assert len(fa) == len(fb) == 12
    assert np.mean([np.abs(_L(x) - _L(y)).mean() for x, y in zip(fa, fb)]) < 1.5   # lightness kept (lossy codec)
    lossless = colourize_video(model_file, src, tmp_path / 'll', codec='lossless', display=False)
    assert lossless.suffix == '.mkv'
    fc = _frames(lossless)
    assert max(np.abs(_L(x) - _L(y)).max() for x, y in zip(fa, fc)) < 1.0         # exact within 8-bit rounding
    odd = write_clip(make_clip(PHOTOS, 'pan', n=4, size=(65, 49)), tmp_path / 'odd.mkv')     # 4:2:0 needs even sides
    with av.open(str(colourize_video(model_file, odd, tmp_path / 'odd.mp4', display=False))) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height, c.streams.video[0].frames) == (65, 49, 4)


def test_a_failing_frame_leaves_no_half_file_and_names_the_frame(model_file, tmp_path, monkeypatch):
    import colourgan_fastai.video as video
    src = write_clip(make_clip(PHOTOS, 'still', n=10, size=(64, 48)), tmp_path / 'still.mkv')
    dst = tmp_path / 'out' / 'still.mp4'
    real, calls = video._compose, []

    def failing(grey, ab):
        calls.append(1)
        if len(calls) == 6: raise RuntimeError('disk on fire')
        return real(grey, ab)
    monkeypatch.setattr(video, '_compose', failing)
    with pytest.raises(ValueError, match=r'still.mkv: frame 5: RuntimeError: disk on fire'):
        colourize_video(model_file, src, dst, display=False)
    assert list((tmp_path / 'out').iterdir()) == []                      # nothing under its name, no temporary file
    monkeypatch.setattr(video, '_compose', real)
    assert len(_frames(colourize_video(model_file, src, dst, display=False))) == 10      # a second run redoes it
    with pytest.raises(FileExistsError): colourize_video(model_file, src, dst, display=False)
    with pytest.raises(ValueError, match='inputs are never written'):
        colourize_video(model_file, src, src, overwrite=True, display=False)


def test_a_folder_of_photos_and_films_does_both_and_a_broken_film_is_reported(model_file, tmp_path, capsys):
    from PIL import Image
    from colourgan_fastai.cli import main, EXIT_SOME_FAILED
    src = tmp_path / 'in'; src.mkdir()
    write_clip(make_clip(PHOTOS, 'pan', n=6, size=(64, 48)), src / 'film.mkv')
    Image.fromarray(PHOTOS[1][:60, :80]).save(src / 'photo.png')
    (src / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42 not really a film')
    res = colourize_folder(model_file, src, tmp_path / 'out', display=False)
    assert sorted(p.name for p in res['written']) == ['film.mp4', 'photo.png']
    assert [(f.name, 'broken.mp4' in why and 'cannot be decoded' in why) for f, why in res['failed']] == [('broken.mp4', True)]
    assert len(_frames(tmp_path / 'out' / 'film.mp4')) == 6
    assert main(['colourize', str(src / 'film.mkv'), '-o', str(tmp_path / 'cli'), '--model', str(model_file),
                 '--video-codec', 'lossless']) == 0
    assert len(_frames(tmp_path / 'cli' / 'film.mkv')) == 6
    assert main(['colourize', str(src), '-o', str(tmp_path / 'cli2'), '--model', str(model_file)]) == EXIT_SOME_FAILED
    assert 'colourised 2 file(s)' in capsys.readouterr().out
