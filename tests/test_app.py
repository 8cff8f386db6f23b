"""The web page (`colourgan app`), used as a person would: through gradio_client, and in headless Chromium."""
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import skimage.color as skc
import skimage.data
from PIL import Image

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')      # as colourgan_fastai.app does: no usage reports
gr = pytest.importorskip('gradio', reason="the [app] extra (Gradio) is not installed")

from colourgan_fastai.metrics import colourfulness  # noqa: E402
from colourgan_fastai.cli import main, EXIT_ERROR               # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _serving(model, workdir):
    "The page for `model`, served on a free local port: yields its address, closes it afterwards."
    from colourgan_fastai.app import build_app
    demo = build_app(model, max_megapixels=1.0, workdir=workdir)
    port = _free_port()
    demo.launch(server_name='127.0.0.1', server_port=port, prevent_thread_lock=True, quiet=True)
    yield f'http://127.0.0.1:{port}/'
    demo.close()


@pytest.fixture(scope='module')
def server(model_file, tmp_path_factory): yield from _serving(model_file, tmp_path_factory.mktemp('app'))


def _L(a): return skc.rgb2lab(np.asarray(a.convert('RGB')) / 255.)[..., 0]


def _photo(tmp_path, name='cat.png', h=120, w=160):
    p = tmp_path / name
    Image.fromarray(skimage.data.chelsea()[:h, :w]).save(p)
    return p


def test_the_api_colourises_a_photo_and_survives_bad_input(server, tmp_path):
    from gradio_client import Client, handle_file
    client = Client(server, verbose=False)
    src = _photo(tmp_path)
    slider, gallery, downloads, message = client.predict([handle_file(str(src))], 32, api_name='/colourize')
    out = Image.open(downloads[0] if isinstance(downloads[0], str) else downloads[0]['path'])
    assert out.size == (160, 120)
    assert np.abs(_L(out) - _L(Image.open(src))).max() < 1.0           # L equal to the input's within rounding
    import torch
    cf = colourfulness(torch.from_numpy(np.asarray(out.convert('RGB'))).permute(2, 0, 1)[None].float() / 255).item()
    assert cf > 3                                                      # it colours
    assert 'Colourised 1 photo' in message
    bad = tmp_path / 'corrupt.png'; bad.write_bytes(b'\x89PNG this is not an image')
    with pytest.raises(Exception, match='Nothing could be colourised.*corrupt.png'):
        client.predict([handle_file(str(bad))], 32, api_name='/colourize')
    big = tmp_path / 'big.png'; Image.new('L', (1500, 1000)).save(big)   # 1.5 MP over the 1 MP limit
    *_, message = client.predict([handle_file(str(big)), handle_file(str(src))], 32, api_name='/colourize')
    assert 'big.png' in message and 'over this server' in message      # reported; the other photo still done
    *_, message = client.predict([handle_file(str(src))], 32, api_name='/colourize')   # still serving
    assert 'Colourised 1 photo' in message


def test_app_without_a_model_explains_how_to_make_one(capsys):
    assert main(['app']) == EXIT_ERROR
    err = capsys.readouterr().err
    assert 'make demo' in err and 'models/demo.pkl' in err


def _browser_driver():
    "examples/app_screenshot.py's functions; skipped without selenium or chromium (an error in CI)."
    import runpy
    pytest.importorskip('selenium', reason="the [browser] extra (selenium) is not installed")
    shot = runpy.run_path(str(Path(__file__).resolve().parents[1] / 'examples' / 'app_screenshot.py'), run_name='t')
    browser, driver = shot['browsers']()
    if not (browser and driver):
        if os.environ.get('COLOURGAN_REQUIRE_SHARED'): pytest.fail("chromium and chromedriver are required in CI")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    return shot


def test_the_page_in_a_real_browser(server, tmp_path):
    "Headless Chromium: upload a photo, click Colourise, the result appears; a screenshot is saved."
    shot = _browser_driver()
    message = shot['drive'](server, [_photo(tmp_path, 'street.png', 160, 240)], tmp_path / 'app.png', tmp_path / 'prof')
    assert 'Colourised 1 photo' in message
    assert Image.open(tmp_path / 'app.png').size[0] >= 1000


@pytest.fixture(scope='module')
def hint_server(hint_model_file, tmp_path_factory): yield from _serving(hint_model_file, tmp_path_factory.mktemp('happ'))


def test_a_click_on_the_page_puts_a_hint_and_the_colour_there_becomes_the_chosen_one(hint_server, tmp_path):
    "Headless Chromium: upload, click the photo, type a colour into the picker; the download is redone with it."
    shot = _browser_driver()
    src = _photo(tmp_path, 'cat.png', 120, 160)
    before, after, message, start = shot['drive_hints'](hint_server, src, (40, 30), '#ff0000', tmp_path / 'hints.png',
                                                        tmp_path / 'prof')
    assert '1 hint' in message
    assert before.shape == after.shape == (120, 160, 3)
    picked = np.array([int(start[k:k + 2], 16) for k in (1, 3, 5)])
    near = before[28:33, 38:43].reshape(-1, 3).astype(int)
    assert np.abs(near - picked).max(1).min() <= 4             # the picker starts at the colour predicted there
    lab = lambda a: skc.rgb2lab(a[28:33, 38:43] / 255.)[..., 1:].mean((0, 1))
    red = skc.rgb2lab(np.array([[[1., 0, 0]]]))[0, 0, 1:]
    assert np.linalg.norm(lab(after) - red) < 0.8 * np.linalg.norm(lab(before) - red)
    assert np.abs(_L(Image.fromarray(after)) - _L(Image.open(src))).max() < 1.0    # lightness still the input's


def test_the_page_colourises_a_short_clip(server, tmp_path):
    pytest.importorskip('av', reason="the [video] extra is not installed")
    import av
    import skimage.data
    from gradio_client import Client, handle_file
    from colourgan_fastai.clips import make_clip, write_clip
    src = write_clip(make_clip(skimage.data.astronaut(), 'pan', n=8, size=(96, 64)), tmp_path / 'clip.mp4', codec='h264')
    video, message = Client(server, verbose=False).predict(handle_file(str(src)), 32, True, api_name='/colourize_film')
    path = video['video'] if isinstance(video, dict) else video
    with av.open(str(path if isinstance(path, str) else path['path'])) as c:
        assert sum(1 for _ in c.decode(video=0)) == 8
    assert 'Colourised clip.mp4' in message
