"""Drive the web page in headless Chromium as a person would (upload a photo, click Colourise, wait for the result)
and save a screenshot: images/app.png in the README comes from here. Uses Debian's chromium and chromedriver
(`apt-get install chromium chromium-driver`) through selenium (the [browser] extra); nothing is downloaded.

    python examples/app_screenshot.py --model models/demo.pkl --photo my_photo.jpg --out images/app.png
    python examples/app_screenshot.py --model models/hinted.pkl --photo p.jpg --hint 60 40 '#c03020' --out images/app_hints.png

`--hint X Y COLOUR` drives the "Colour hints" tab instead: a click at (X, Y) of the photo, COLOUR typed into the
picker.
"""
import argparse
import shutil
import socket
import tempfile
import time
from pathlib import Path

from PIL import Image

CHROMIUM_FLAGS = ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync')


def browsers():
    "(chromium, chromedriver) paths, or None where missing."
    return (shutil.which('chromium') or shutil.which('chromium-browser')), shutil.which('chromedriver')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _chromium(profile, size):
    from selenium import webdriver
    browser, driver_path = browsers()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in CHROMIUM_FLAGS + (f'--user-data-dir={profile}', f'--window-size={size[0]},{size[1]}'):
        opts.add_argument(a)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=opts)


def _fetch_png(href):
    "The picture a link on the page serves, as an RGB array."
    import io
    import urllib.request
    import numpy as np
    with urllib.request.urlopen(href) as r: return np.asarray(Image.open(io.BytesIO(r.read())).convert('RGB'))


def _viewport_point(drv, img, w, h, at):
    """The viewport pixel showing pixel `at` (x, y) of a w x h photo fitted, centred, into the element `img`, after
    scrolling that pixel to the middle of the window (an element partly out of view has a shifted 'in-view centre',
    so offsets from it would miss)."""
    rect = 'const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];'
    left, top, bw, bh = drv.execute_script(rect, img)
    s = min(bw / w, bh / h)                                          # the photo is fitted into its box, centred
    ox, oy = (at[0] + 0.5 - w / 2) * s, (at[1] + 0.5 - h / 2) * s   # the point's offset from the box's centre
    drv.execute_script('window.scrollBy(0, arguments[0] - window.innerHeight / 2);', top + bh / 2 + oy)
    left, top, bw, bh = drv.execute_script(rect, img)
    return int(left + bw / 2 + ox), int(top + bh / 2 + oy)


def drive_hints(url, photo, at, colour, out, profile, timeout=90, size=(1400, 1000), timings=None):
    """The 'Colour hints' tab as a person uses it: upload `photo`, click it at `at` (x, y in the photo's pixels),
    type `colour` ('#rrggbb') into the colour picker, wait for the new result, save a screenshot at `out`.
    Returns (the download before the colour was picked, after it, the page's message, the picker's starting colour).
    `timings` (a dict) gets the seconds from the click, and from the colour's Enter, to the new result's link."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    drv = _chromium(profile, size)
    try:
        drv.get(url)
        wait = WebDriverWait(drv, timeout, poll_frequency=0.02)
        tab = wait.until(lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, 'button[role=tab]') if 'hints' in t.text])
        tab[0].click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#hint_photo input[type=file]')).send_keys(str(photo))
        link = lambda d: (d.find_elements(By.CSS_SELECTOR, '#hint_download a') or [None])[0]
        first = wait.until(lambda d: link(d) and link(d).get_attribute('href'))
        before = _fetch_png(first)
        img = drv.find_element(By.CSS_SELECTOR, '#hint_view img')
        w, h = int(img.get_attribute('naturalWidth')), int(img.get_attribute('naturalHeight'))
        x, y = _viewport_point(drv, img, w, h, at)
        t0 = time.perf_counter()
        click = ActionBuilder(drv); click.pointer_action.move_to_location(x, y); click.pointer_action.click()
        click.perform()
        wait.until(lambda d: '1 hint' in d.find_element(By.ID, 'hint_message').text)
        clicked = wait.until(lambda d: (h := link(d).get_attribute('href')) != first and h)
        t_click = time.perf_counter() - t0
        drv.find_element(By.CSS_SELECTOR, '#hint_colour button.dialog-button').click()
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#hint_colour input[type=text]'))
        start = box.get_attribute('value')
        box.send_keys(Keys.CONTROL, 'a'); box.send_keys(colour); t0 = time.perf_counter(); box.send_keys(Keys.ENTER)
        chosen = lambda d: d.find_element(By.CSS_SELECTOR, '#hint_points input').get_attribute('value').lower()
        wait.until(lambda d: colour.lower() in chosen(d))
        after = wait.until(lambda d: (h := link(d).get_attribute('href')) != clicked and h)
        if timings is not None: timings.update(click=t_click, colour=time.perf_counter() - t0)
        drv.find_element(By.TAG_NAME, 'h1').click()                      # close the picker for the screenshot
        drv.save_screenshot(str(out))
        return before, _fetch_png(after), drv.find_element(By.ID, 'hint_message').text, start
    finally: drv.quit()


def drive(url, photos, out, profile, timeout=90, size=(1400, 1100)):
    """Open `url`, upload `photos`, click Colourise, wait until the gallery shows the results and the message says
    so, save a screenshot at `out`. Returns the page's message."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    drv = _chromium(profile, size)
    try:
        drv.get(url)
        wait = WebDriverWait(drv, timeout)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#photos input[type=file]'))
        upload.send_keys('\n'.join(str(p) for p in photos))
        wait.until(lambda d: all(Path(p).stem in d.find_element(By.ID, 'photos').text for p in photos))
        drv.find_element(By.ID, 'colourise').click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '#gallery img')) >= len(photos) or None)
        wait.until(lambda d: 'Colourised' in d.find_element(By.ID, 'message').text)
        message = drv.find_element(By.ID, 'message').text
        assert all(i.is_displayed() for i in drv.find_elements(By.CSS_SELECTOR, '#gallery img'))
        drv.save_screenshot(str(out))
        return message
    finally: drv.quit()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True); p.add_argument('--photo', nargs='+', required=True)
    p.add_argument('--out', default='images/app.png')
    p.add_argument('--hint', nargs=3, metavar=('X', 'Y', 'COLOUR'), help='the Colour hints tab: click at X, Y')
    a = p.parse_args(argv)
    from colourgan_fastai.app import build_app
    with tempfile.TemporaryDirectory() as tmp:
        demo = build_app(a.model, workdir=tmp)
        port = free_port()
        demo.launch(server_name='127.0.0.1', server_port=port, prevent_thread_lock=True, quiet=True)
        url, photos = f'http://127.0.0.1:{port}/', [Path(x).resolve() for x in a.photo]
        try:
            if a.hint:
                at = (int(a.hint[0]), int(a.hint[1]))
                t = {}
                print(drive_hints(url, photos[0], at, a.hint[2], a.out, Path(tmp) / 'profile', timings=t)[2])
                w, h = Image.open(photos[0]).size
                print(f"{w} x {h} photo ({w * h / 1e6:.2f} MP): the page's new result {t['click']:.2f} s after the "
                      f"click, {t['colour']:.2f} s after the colour was entered")
            else: print(drive(url, photos, a.out, Path(tmp) / 'profile'))
        finally: demo.close()


if __name__ == '__main__': main()
