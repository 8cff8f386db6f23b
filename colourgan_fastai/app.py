"""`colourgan app`: a web page to colourise photos (Gradio), for anyone with an exported model.

Drop or pick one or several photos (any format `colourize` reads, any size): the page shows grey input and
colourised output side by side on a before/after slider, every result in a gallery, and full-resolution PNG
downloads whose lightness is the input's. The render size defaults to the model's training size. Bad input (an
unreadable file, a file that is not an image, an image above `max_megapixels`) gets a message on the page, and the
server keeps serving. Requests are queued one at a time, so two users never run two models on two cores at once.
Needs the optional `[app]` extra (`pip install 'colourgan_fastai[app]'`).

With a model trained with hints (`colourgan train --hints`), a "Colour hints" tab takes one photo: click on the
result to put a point, whose colour picker starts at the colour the model predicted there; pick the colour the
thing really was and the photo is colourised again with it. Points can be chosen from a list, moved (tick "move" and
click the new place), removed or cleared; the full-resolution PNG (without the markers) is there to download.
The "Film" tab takes a short clip (with the [video] extra) and gives it back colourised, with steady colours.
"""
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ['build_app', 'serve', 'colourize_uploads', 'colour_at', 'DEFAULT_MAX_MEGAPIXELS']

DEFAULT_MAX_MEGAPIXELS = 40.
EXAMPLE_PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png')


def _gradio():
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')     # a local tool: no usage reports to Gradio's servers
    try:
        import gradio as gr
    except ImportError:
        raise ImportError("the web page needs Gradio: pip install 'colourgan_fastai[app]'") from None
    return gr


def _check_size(path, max_megapixels):
    "Open the header only; refuse images over the limit before decoding them."
    with Image.open(path) as im:
        mp = im.size[0] * im.size[1] / 1e6
    if mp > max_megapixels:
        raise ValueError(f"{mp:.1f} megapixels is over this server's limit of {max_megapixels:g}")


def colourize_uploads(learn, files, render_size, out_dir, max_megapixels=DEFAULT_MAX_MEGAPIXELS):
    """Colourise uploaded files -> (results, errors): results are (name, grey RGB path, colourised PNG path);
    errors are 'name: why' lines. Never raises for a bad file."""
    from .inference import colourize, GreyImage, load_colourizer
    learn = load_colourizer(learn)
    results, errors = [], []
    out_dir = Path(out_dir)
    for f in files or []:
        path = Path(f if isinstance(f, (str, Path)) else getattr(f, 'name', f))
        name = path.name
        try:
            _check_size(path, max_megapixels)
            grey = GreyImage.create(path)                   # read once: for the model and for the slider
            col = colourize(learn, grey, render_size=int(render_size) if render_size else None)
        except Exception as e:
            msg = str(e) if isinstance(e, ValueError) else f"not a readable image ({type(e).__name__})"
            errors.append(f"{name}: {msg}"); continue
        stem = path.stem
        out = out_dir / f"{stem}_colourised.png"
        col.save(out)
        g = grey.grey_rgb()                                 # what the model saw
        grey_path = out_dir / f"{stem}_grey.png"
        Image.fromarray(g).save(grey_path)
        results.append((name, str(grey_path), str(out)))
    return results, errors


def colour_at(img, x, y) -> str:
    "The colour of picture `img` (PIL or array) at pixel (x, y), as '#rrggbb'."
    a = np.asarray(img)
    r, g, b = a[int(y), int(x)][:3] if a.ndim == 3 else (a[int(y), int(x)],) * 3
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


def _picker_hex(c):
    "Gradio's colour picker value ('#rrggbb', '#rrggbbaa' or 'rgba(r, g, b, a)') -> '#rrggbb'."
    from PIL import ImageColor
    c = c.strip()
    if c.startswith('rgba'): c = 'rgb' + c[4:c.rindex(',')] + ')'
    rgb = ImageColor.getrgb(c)[:3]
    return '#%02x%02x%02x' % rgb


def _hints_tab(gr, learn, size, workdir, max_megapixels):
    "The 'Colour hints' tab: one photo, points put by clicking, each with a colour picker (see the module docstring)."
    from .figures import draw_points
    from .inference import GreyImage, colourize

    def render(st, render_size, message=None):
        out = colourize(learn, st['grey'], render_size=int(render_size), hints=[tuple(p) for p in st['points']])
        path = Path(tempfile.mkdtemp(dir=st['dir'])) / f"{st['stem']}_colourised.png"    # a new link each time
        out.save(path, compress_level=1)
        st['result'] = np.asarray(out.convert('RGB'))
        n = len(st['points'])
        message = message or (f"{n} hint(s). Click the photo to put a point; pick its colour." if n else
                              "Click the photo where you know a colour, then pick it.")
        return st, draw_points(st['result'], st['points'], st['sel']), str(path), message, _choices(st)

    def _choices(st):
        names = [f"{k + 1}: ({x:.0f}, {y:.0f}) {c}" for k, (x, y, c) in enumerate(st['points'])]
        return gr.update(choices=names, value=names[st['sel']] if st['sel'] is not None else None)

    def start(photo, render_size):
        if not photo: raise gr.Error("Choose a photo first.")
        try:
            _check_size(photo, max_megapixels)
            grey = GreyImage.create(photo)
        except Exception as e:
            raise gr.Error(str(e) if isinstance(e, ValueError) else f"not a readable image ({type(e).__name__})")
        st = dict(grey=grey, points=[], sel=None, stem=Path(photo).stem, dir=tempfile.mkdtemp(dir=workdir))
        return render(st, render_size)

    def click(st, move, render_size, evt: gr.SelectData):
        if not st: raise gr.Error("Choose a photo first.")
        x, y = (int(v) for v in evt.index[:2])
        if move and st['sel'] is not None:
            st['points'][st['sel']][:2] = [x, y]
        else:
            st['points'].append([x, y, colour_at(st['result'], x, y)])
            st['sel'] = len(st['points']) - 1
        return (*render(st, render_size), st['points'][st['sel']][2])

    def recolour(st, colour, render_size):
        if not st or st['sel'] is None or not colour: return (gr.skip(),) * 6
        c = _picker_hex(colour)
        if c == st['points'][st['sel']][2]: return (gr.skip(),) * 6
        st['points'][st['sel']][2] = c
        return (*render(st, render_size), gr.skip())

    def choose(st, name):
        if not st or not name: return gr.skip(), gr.skip(), gr.skip()
        st['sel'] = int(name.split(':')[0]) - 1
        return st, draw_points(st['result'], st['points'], st['sel']), st['points'][st['sel']][2]

    def remove(st, render_size, everything=False):
        if not st: return (gr.skip(),) * 5
        if everything: st['points'] = []
        elif st['sel'] is not None: del st['points'][st['sel']]
        st['sel'] = len(st['points']) - 1 if st['points'] else None
        return render(st, render_size)

    state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            photo = gr.Image(type='filepath', label='Photo', sources=['upload'], elem_id='hint_photo', height=240)
            render_size = gr.Slider(8, 1024, value=size, step=8, label=f'Render size (trained at {size} px)')
            picker = gr.ColorPicker(label='Colour of the selected point', elem_id='hint_colour')
            chosen = gr.Dropdown(label='Selected point', choices=[], elem_id='hint_points')
            move = gr.Checkbox(label='Move: the next click moves the selected point', elem_id='hint_move')
            with gr.Row():
                drop = gr.Button('Remove point', elem_id='hint_remove')
                clear = gr.Button('Clear all', elem_id='hint_clear')
        with gr.Column(scale=2):
            view = gr.Image(label='Click to put a colour hint', interactive=False, elem_id='hint_view',
                            format='jpeg')    # a preview: JPEG is 20x quicker to write than WebP; the download is PNG
            message = gr.Markdown(elem_id='hint_message')
            download = gr.File(label='Download (full-resolution PNG)', elem_id='hint_download')
    outs = [state, view, download, message, chosen]
    photo.upload(start, [photo, render_size], outs)
    view.select(click, [state, move, render_size], outs + [picker])
    picker.change(recolour, [state, picker, render_size], outs + [picker])
    chosen.input(choose, [state, chosen], [state, view, picker])
    drop.click(remove, [state, render_size], outs)
    clear.click(lambda st, r: remove(st, r, True), [state, render_size], outs)


MAX_FILM_SECONDS = 60.


def _film_tab(gr, learn, size, workdir, max_megapixels):
    "The 'Film' tab: a short clip in, the clip colourised with steady colours out (needs the [video] extra)."
    from .video import colourize_video, film_info

    def run(path, render_size, steady):
        if not path: raise gr.Error("Choose a short clip first.")
        try:
            w, h, seconds = film_info(path)
            if seconds > MAX_FILM_SECONDS: raise ValueError(f"{seconds:.0f} s is longer than this page's "
                                                            f"{MAX_FILM_SECONDS:g} s (use `colourgan colourise`)")
            if w * h / 1e6 > max_megapixels: raise ValueError(f"{w}x{h} is over this server's limit")
            out = Path(tempfile.mkdtemp(dir=workdir)) / (Path(path).stem + '_colourised.mp4')
            colourize_video(learn, path, out, render_size=int(render_size), steady=bool(steady), display=False)
        except (ValueError, OSError) as e: raise gr.Error(f"{Path(path).name}: {e}")
        return str(out), f"Colourised {Path(path).name} ({w}x{h}, {seconds:.1f} s)."

    with gr.Row():
        with gr.Column():
            clip = gr.Video(label=f'A short clip (at most {MAX_FILM_SECONDS:g} s)', sources=['upload'], elem_id='film')
            render_size = gr.Slider(8, 1024, value=size, step=8, label=f'Render size (trained at {size} px)')
            steady = gr.Checkbox(value=True, label='Steady colours (carried along the motion)')
            button = gr.Button('Colourise the clip', variant='primary', elem_id='film_go')
        with gr.Column():
            result = gr.Video(label='Colourised', elem_id='film_result')
            message = gr.Markdown(elem_id='film_message')
    button.click(run, [clip, render_size, steady], [result, message], api_name='colourize_film')


def _examples(folder: Path):
    "Grey versions of a few of scikit-image's photos, one click away on the page."
    from .figures import _grey_of
    from .data import PhotoCrops
    paths = []
    for name in EXAMPLE_PHOTOS:
        p = folder / f"{Path(name).stem}_grey.png"
        if not p.exists(): Image.fromarray(_grey_of(PhotoCrops.photo(name))).save(p)
        paths.append(str(p))
    return paths


def build_app(model, device='cpu', max_megapixels=DEFAULT_MAX_MEGAPIXELS, workdir=None):
    "The Gradio Blocks page for an exported model (path or Learner); see the module docstring."
    gr = _gradio()
    from fastai.torch_core import get_model
    from .inference import load_colourizer
    learn = load_colourizer(model, cpu=str(device) == 'cpu')
    get_model(learn.model).to(device)
    size = min(getattr(get_model(learn.model), 'img_size', (64, 64)))
    workdir = Path(workdir or tempfile.mkdtemp(prefix='colourgan_app_'))
    examples = _examples(workdir)

    def run(files, render_size):
        if not files: raise gr.Error("Choose or drop one or more photos first.")
        out = Path(tempfile.mkdtemp(dir=workdir))
        results, errors = colourize_uploads(learn, files, render_size, out, max_megapixels)
        if not results: raise gr.Error("Nothing could be colourised. " + ' '.join(errors))
        first = results[0]
        message = ("Could not colourise: " + '; '.join(errors)) if errors else \
            f"Colourised {len(results)} photo(s) at render size {int(render_size)}."
        return ((first[1], first[2]), [(r[2], r[0]) for r in results], [r[2] for r in results], message)

    with gr.Blocks(title='colourgan_fastai') as demo:
        gr.Markdown("# colourgan_fastai: colourise black-and-white photos\n"
                    f"Drop or pick photos (any size; at most {max_megapixels:g} megapixels each). Chroma is "
                    "predicted at the render size and put on your photo's full-resolution lightness.")
        with gr.Tab('Colourise', elem_id='tab_colourise'):
            _colourise_tab(gr, run, size, examples)
        with gr.Tab('Colour hints', elem_id='tab_hints'):
            if getattr(get_model(learn.model), 'takes_hints', False): _hints_tab(gr, learn, size, workdir, max_megapixels)
            else: gr.Markdown("This model was trained without hints. Train one that takes them with "
                              "`colourgan train --hints`, then click on a photo to say what colour a thing is.")
        with gr.Tab('Film', elem_id='tab_film'):
            try:
                _film_tab(gr, learn, size, workdir, max_megapixels)
            except ImportError as e: gr.Markdown(f"Films need the [video] extra: {e}")
    demo.queue(default_concurrency_limit=1)
    return demo


def _colourise_tab(gr, run, size, examples):
    "The first tab: several photos at once, a before/after slider, a gallery and the downloads."
    with gr.Row():
        with gr.Column():
            files = gr.File(label='Photos', file_count='multiple', type='filepath', elem_id='photos')
            render = gr.Slider(8, 1024, value=size, step=8, label=f'Render size (trained at {size} px)')
            button = gr.Button('Colourise', variant='primary', elem_id='colourise')
            gr.Examples(examples=[[[p]] for p in examples], inputs=[files], label='Examples')
        with gr.Column():
            slider = gr.ImageSlider(label='Before / after', type='filepath', elem_id='before_after')
            message = gr.Markdown(elem_id='message')
    gallery = gr.Gallery(label='Colourised', elem_id='gallery', columns=4, height=320, object_fit='contain')
    downloads = gr.File(label='Download (full-resolution PNG)', file_count='multiple', elem_id='downloads')
    button.click(run, [files, render], [slider, gallery, downloads, message], api_name='colourize')


def serve(model, host='127.0.0.1', port=None, device='cpu', max_megapixels=DEFAULT_MAX_MEGAPIXELS, **launch_kwargs):
    "Build the page and serve it (blocking unless `prevent_thread_lock=True`); binds to 127.0.0.1 by default."
    demo = build_app(model, device, max_megapixels)
    demo.launch(server_name=host, server_port=port, max_file_size=f"{int(max_megapixels * 8)}mb",
                allowed_paths=[], **launch_kwargs)
    return demo
