"""`colourgan app`: a web page to colourise photos (Gradio), for anyone with an exported model.

Drop or pick one or several photos (any format `colourize` reads, any size): the page shows grey input and
colourised output side by side on a before/after slider, every result in a gallery, and full-resolution PNG
downloads whose lightness is the input's. The render size defaults to the model's training size. Bad input (an
unreadable file, a file that is not an image, an image above `max_megapixels`) gets a message on the page, and the
server keeps serving. Requests are queued one at a time, so two users never run two models on two cores at once.
Needs the optional `[app]` extra (`pip install 'colourgan_fastai[app]'`).
"""
import os
import tempfile
from pathlib import Path

from PIL import Image

__all__ = ['build_app', 'serve', 'colourize_uploads', 'DEFAULT_MAX_MEGAPIXELS']

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
    demo.queue(default_concurrency_limit=1)
    return demo


def serve(model, host='127.0.0.1', port=None, device='cpu', max_megapixels=DEFAULT_MAX_MEGAPIXELS, **launch_kwargs):
    "Build the page and serve it (blocking unless `prevent_thread_lock=True`); binds to 127.0.0.1 by default."
    demo = build_app(model, device, max_megapixels)
    demo.launch(server_name=host, server_port=port, max_file_size=f"{int(max_megapixels * 8)}mb",
                allowed_paths=[], **launch_kwargs)
    return demo
