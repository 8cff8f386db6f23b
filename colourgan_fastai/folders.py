"""The folder job: colourise files and folders into an output folder, safely.

The whole run is checked before any work (`plan_outputs`): an input is never written, whatever `overwrite` says;
two inputs that would write one output are refused up front; outputs that exist are skipped unless `overwrite`.
Every frame of animated GIFs and multi-page TIFFs is colourised; each output is written atomically (a temporary file
beside it, then a rename) with the umask's permissions; unreadable files are reported at the end while the rest
finish; a progress bar shows the batches.
"""
import os
import tempfile
import warnings
from glob import escape as glob_escape
from pathlib import Path

from PIL import Image
from fastai.torch_core import get_model
from fastprogress.fastprogress import progress_bar

from .images import folder_images, image_frames
from .hints import check_points
from .video import is_video, video_output_name
from .inference import GreyImage, colourize_many, load_colourizer, check_positive, require_hints

__all__ = ['colourize_folder', 'colourize_files', 'folder_jobs', 'plan_outputs', 'output_name', 'match_hints']


TMP_SUFFIX = '.colourgan-tmp'
LOSSLESS_EXTS = {'.png', '.tif', '.tiff', '.bmp', '.ppm'}      # written in their own format, L kept exactly
FORMATS = {'auto': None, 'png': '.png', 'tiff': '.tif', 'jpg': '.jpg'}


def output_name(path: Path, fmt='auto') -> str:
    """The output file name for an input: `auto` keeps lossless formats (PNG, TIFF, BMP, PPM) and writes every other
    one (JPEG, GIF, WebP, PGM) as PNG, so the output's lightness is the input's within 8-bit rounding; `png`,
    `tiff` or `jpg` force a format (JPEG is lossy: its L differs by a few units)."""
    if fmt not in FORMATS: raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    ext = FORMATS[fmt] or (path.suffix if path.suffix.lower() in LOSSLESS_EXTS else '.png')
    return path.stem + ext


def _writable_dir(d: Path):
    "Raise a clear error unless files can be created in folder `d` (or in the nearest folder above it that exists)."
    p = d
    while not p.exists(): p = p.parent
    if not p.is_dir(): raise NotADirectoryError(f"cannot create the output folder {d}: {p} is a file")
    if not os.access(p, os.W_OK | os.X_OK): raise PermissionError(f"the output folder {p} is not writable")


def plan_outputs(jobs, overwrite=False):
    """Check a whole run before any work: `jobs` is [(input file, output path), ...]. Refuses (ValueError) an output
    that is an input (whatever `overwrite` says), two inputs that would write the same output (naming them), an
    output that is a folder, and output folders that cannot be written. Returns (todo, skipped): outputs that
    exist are skipped unless `overwrite`."""
    inputs = {}
    for f, _ in jobs:
        try: st = os.stat(f); inputs[(st.st_dev, st.st_ino)] = f
        except OSError: pass
    by_out, todo, skipped = {}, [], []
    for f, out in jobs:
        by_out.setdefault(os.path.normcase(os.path.abspath(out)), []).append(f)
    clashes = [fs for fs in by_out.values() if len(fs) > 1]
    if clashes:
        raise ValueError("several inputs would write the same output file: " + '; '.join(
            ' and '.join(map(str, fs)) for fs in clashes[:5]) + ('; ...' if len(clashes) > 5 else '') +
            " (rename them, or colourise them into separate folders)")
    for f, out in jobs:
        if out.exists():
            st = out.stat()
            if (st.st_dev, st.st_ino) in inputs:
                raise ValueError(f"{f} would be written to {out}, which is an input ({inputs[(st.st_dev, st.st_ino)]}): "
                                 f"inputs are never written, whatever --overwrite says; choose another output folder")
            if out.is_dir(): raise IsADirectoryError(f"the output {out} is a folder")
        if out.parent.exists() and not out.parent.is_dir():
            raise NotADirectoryError(f"cannot write {out}: {out.parent} is a file")
        (todo if overwrite or not out.exists() else skipped).append((f, out))
    for d in sorted({out.parent for _, out in todo}): _writable_dir(d)
    return todo, [out for _, out in skipped]


def _remove_stale_tmp(out: Path):
    "Temporary files an interrupted (killed) earlier save of `out` left behind."
    if out.parent.is_dir():
        for t in out.parent.glob(f'.{glob_escape(out.name)}.*{TMP_SUFFIX}'): t.unlink(missing_ok=True)


def _umask():
    m = os.umask(0); os.umask(m)
    return m


def _atomic_save(frames, out: Path, durations=None, loop=0):
    """Write one image, or several frames (multi-page TIFF, animated PNG), to a temporary file beside `out`, then
    rename: an interruption never leaves a half-written image. The file gets the permissions any new file gets
    under the user's umask (not the temporary file's 0600)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(out.suffix.lower(), 'PNG')
    if len(frames) > 1 and fmt not in ('PNG', 'TIFF'):
        raise ValueError(f"{len(frames)} frames cannot be written as {fmt}: use PNG or TIFF output")
    fd, tmp = tempfile.mkstemp(prefix=f'.{out.name}.', suffix=TMP_SUFFIX, dir=out.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        im, kw = frames[0], {}
        if fmt == 'JPEG': im, kw = im.convert('RGB'), dict(quality=95)
        if len(frames) > 1:
            kw = dict(save_all=True, append_images=frames[1:])
            if fmt == 'PNG': kw.update(duration=durations or 100, loop=loop)
        im.save(tmp, fmt, **kw)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp): os.remove(tmp)
        raise


def _read_frames(f):
    "Every frame of a file as a GreyImage, with its frame durations and loop count (for animations)."
    with Image.open(f) as im: info = dict(im.info)
    frames = image_frames(f)
    durations = [fr.info.get('duration', info.get('duration', 100)) for fr in frames]
    return [GreyImage.create(fr) for fr in frames], durations, info.get('loop', 0)


def match_hints(hints, files, base=None, source='hints'):
    """{input file: points} from `hints`, a dict whose keys name input files: the path as given, the path relative to
    `base` (a hints file's folder, or the input folder), or the bare file name when only one input has it. Each
    file's points are checked against its size (read from the header). A key that names no input, or several,
    and a point outside its photo raise a ValueError naming `source`, the key and the point."""
    if not hints: return {}
    files = [Path(f).resolve() for f in files]
    by_name = {}
    for f in files: by_name.setdefault(f.name, []).append(f)
    out = {}
    for key, pts in hints.items():
        k = Path(key).expanduser()
        cands = [c.resolve() for c in ([k] if k.is_absolute() else [Path.cwd() / k] + ([Path(base) / k] if base else []))]
        hit = next((c for c in cands if c in files), None)
        if hit is None and len(k.parts) == 1:
            named = by_name.get(k.name, [])
            if len(named) > 1:
                raise ValueError(f"{source}: {key!r} names {len(named)} inputs ({', '.join(map(str, named[:3]))}); "
                                 "give its path")
            hit = named[0] if named else None
        if hit is None: raise ValueError(f"{source}: {key!r} is not one of the images to colourise")
        if is_video(hit): raise ValueError(f"{source}: {key!r} is a film; hints are for photos")
        with Image.open(hit) as im: size = im.size
        check_points(pts, size, f"{hit} in {source}")
        out[hit] = pts
    return out


def colourize_files(learn, jobs, render_size=None, bs=16, overwrite=False, display=True, max_pixels=None,
                    hints=None, video_codec='h264', steady=True) -> dict:
    """Colourise [(input file, output path), ...]: the whole run is checked first (`plan_outputs`); every frame of a
    multi-frame file is colourised; each output is written atomically; unreadable files are reported at the end (a
    warning and the 'failed' list) and the rest carry on. A failed *write* (disk full, permissions) stops the run
    with an OSError: what was written stays, and a rerun skips it. `hints`: {input file: [(x, y, colour), ...]}
    for a colouriser that takes hints (see `match_hints`; every frame of a multi-frame file gets its file's hints).
    Films (`video.is_video`) are colourised after the pictures, one by one, streamed (`colourize_video`, with
    `video_codec` and `steady`); a film that fails is reported like an unreadable picture.
    Returns {'written': [...], 'skipped': [...], 'failed': [(path, reason), ...]}."""
    check_positive('bs', bs); check_positive('render_size', render_size, 8)
    learn = load_colourizer(learn)
    hints = match_hints(hints, [f for f, _ in jobs])
    if hints: require_hints(get_model(learn.model))
    todo, skipped = plan_outputs(jobs, overwrite)
    res = {'written': [], 'skipped': skipped, 'failed': []}
    for _, out in jobs: _remove_stale_tmp(out)
    films = [(f, out) for f, out in todo if is_video(f)]
    todo = [(f, out) for f, out in todo if not is_video(f)]
    for k in progress_bar(range(0, len(todo), bs), display=display and bool(todo)):
        chunk = []
        for f, out in todo[k:k + bs]:
            try: chunk.append((f, out, *_read_frames(f)))
            except Exception as e: res['failed'].append((f, f"{type(e).__name__}: {e}"))
        greys = [g for c in chunk for g in c[2]]
        if not greys: continue
        pts = [hints.get(Path(c[0]).resolve(), []) for c in chunk for _ in c[2]] if hints else None
        ims = iter(colourize_many(learn, greys, render_size, bs, max_pixels, pts))
        for f, out, frames, durations, loop in chunk:
            outs = [next(ims) for _ in frames]
            try: _atomic_save(outs, out, durations, loop)
            except ValueError as e: res['failed'].append((f, str(e))); continue
            res['written'].append(out)
    for f, out in films:
        from .video import colourize_video
        try: res['written'].append(colourize_video(learn, f, out, render_size, video_codec, steady, overwrite=True,
                                                   display=display))
        except (ValueError, OSError) as e: res['failed'].append((f, str(e)))
    if res['failed']:
        warnings.warn(f"could not colourise {len(res['failed'])} file(s): " +
                      '; '.join(f"{f} ({why})" for f, why in res['failed']))
    return res


def folder_jobs(src, dst, fmt='auto', not_images=None, video_codec='h264'):
    """[(input, output), ...] for a file or a folder of images and films (`folder_images`, `video.is_video`): a
    folder's files keep their paths relative to it; files already under `dst` (our own earlier outputs) are not
    inputs. Films are written with `video_codec`'s container (`video_output_name`). Files that are neither are
    appended to the list `not_images` when one is given."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.exists(): raise FileNotFoundError(f"{src} does not exist")
    name = lambda f: video_output_name(f, video_codec) if is_video(f) else output_name(f, fmt)
    if src.is_file(): return [(src, dst / name(src))]
    if dst == src: raise ValueError(f"the output folder {dst} is the input folder: it would overwrite the inputs")
    files, others = folder_images(src)
    files = [f for f in map(Path.resolve, files) if dst not in f.parents]
    others = [f for f in map(Path.resolve, others) if dst not in f.parents]
    files, others = sorted(files + [f for f in others if is_video(f)]), [f for f in others if not is_video(f)]
    if not_images is not None: not_images += others
    if not files:
        raise ValueError(f"no image or film to colourise in {src}" +
                         (f" ({len(others)} other file(s), none of them an image)" if others else ''))
    return [(f, dst / f.relative_to(src).parent / name(f)) for f in files]


def colourize_folder(learn, src, dst, render_size=None, bs=16, overwrite=False, display=True, fmt='auto',
                     max_pixels=None, hints=None, video_codec='h264', steady=True) -> dict:
    """Colourise every image under `src` (a folder, searched recursively, or one file) into `dst`, keeping relative
    paths. Never writes an input, whatever `overwrite` says; refuses up front when two inputs would write one
    output; skips outputs that exist unless `overwrite`; colourises every frame of animated GIFs and multi-page
    TIFFs; writes lossless formats by default (`fmt`, see `output_name`), each file atomically and with the
    umask's permissions. Files Pillow cannot open and whose extension is not an image's are left alone and listed
    under 'not_images'; see `colourize_files` for the rest of the result. `hints`: {file: [(x, y, colour), ...]}, a
    file named by its path relative to `src`, its full path or its bare name, for a colouriser that takes hints.
    Films under `src` are colourised too (`colourize_video`: `video_codec`, `steady`)."""
    not_images = []
    jobs = folder_jobs(src, dst, fmt, not_images, video_codec)
    src = Path(src)
    hints = match_hints(hints, [f for f, _ in jobs], base=src if src.is_dir() else src.parent)
    res = colourize_files(learn, jobs, render_size, bs, overwrite, display, max_pixels, hints, video_codec, steady)
    return {**res, 'not_images': not_images}
