"""Browser tests of the dashboard: `digit_app` served by Voila, driven by Chromium through Playwright.

Every page blocks requests that leave the machine (and records them), so every test also checks that the
dashboard works offline. Screenshots of each test are kept in artifacts/screenshots/."""
import base64, csv, io, json, os, re, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
from types import SimpleNamespace
import numpy as np
import psutil
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / 'digit_nbdev' / 'models' / 'digit_cnn.tflite'
SHOTS = ROOT / 'artifacts' / 'screenshots'
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']
PAGE_TIMEOUT = 60_000  # ms; a page waits for a kernel, slow when four visitors arrive at once on two cores
RESULT_TIMEOUT = 30_000
LOCAL = ('http://127.0.0.1', 'ws://127.0.0.1', 'data:', 'blob:')

# ---------------------------------------------------------------- test images

def _mnist_test():
    from digit_nbdev.data import load_mnist
    return load_mnist()[1]

from digit_nbdev.image_files import encode
from digit_nbdev.photos import paper_scan as paper_digit  # (an MNIST digit as a clean scan: the one renderer the notebooks' demos use too)

MIME = {'PNG': 'image/png', 'JPEG': 'image/jpeg', 'GIF': 'image/gif', 'WEBP': 'image/webp', 'BMP': 'image/bmp', 'TIFF': 'image/tiff'}

def payload(name: str, data: bytes, mime: str = 'image/png') -> dict:
    return {'name': name, 'mimeType': mime, 'buffer': data}

@pytest.fixture(scope='module')
def digits():
    """One paper image per digit 0-9: the first MNIST test digits of each class that the shipped model reads
    right, checked in this process, so the tests check the page, not the model's accuracy."""
    from digit_nbdev.upload import analyse
    x, y = _mnist_test()
    found = {}
    for i in range(len(y)):
        d = int(y[i])
        if d in found: continue
        img = paper_digit(x[i], seed=i, size=160)  # (160 px: the number test pastes three side by side)
        if all((r := analyse('t', encode(img, fmt))).digit == d and r.confidence > 0.9 for fmt in ('PNG', 'JPEG')):
            found[d] = img
        if len(found) == 10: return found
    pytest.fail(f"the model reads too few MNIST test digits right to test with: {sorted(found)}")

# ---------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def wait_for_port(port: int, proc, timeout: float = 60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None: return False
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1): return True
        except OSError: time.sleep(0.2)
    return False

def start_app(log: Path, *args: str, pool_size: int = 2, max_kernels: int = 12):
    "`digit_app` on a free port of 127.0.0.1, its output in `log`; a generator: yields the server, stops it (and its kernels) after."
    if not MODEL.is_file():
        pytest.fail(f"The shipped model {MODEL.relative_to(ROOT)} is missing: the dashboard needs it. Train it with "
                    "`digit_train` and copy digit_cnn.tflite (and .keras) into digit_nbdev/models/.", pytrace=False)
    port = free_port()
    app = Path(sys.executable).parent / 'digit_app'
    with open(log, 'wb') as out:
        # Own session, so that the whole server can be stopped; Voila stops its kernels on SIGTERM.
        # A cache of its own, where digit_app writes its Voila template and configuration: another digit_app
        # starting on this machine meanwhile (another checkout's) would rewrite the user's.
        env = os.environ | {'XDG_CACHE_HOME': str(log.parent / 'cache')}
        proc = subprocess.Popen([str(app), '--no-browser', '--port', str(port), '--pool-size', str(pool_size),
                                 '--max-kernels', str(max_kernels), *args],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        if not wait_for_port(port, proc): pytest.fail(f"digit_app did not start:\n{log.read_text()[-3000:]}", pytrace=False)
        yield SimpleNamespace(url=f'http://127.0.0.1:{port}/', port=port, proc=proc, pool_size=pool_size,
                              max_kernels=max_kernels, log=log)
    finally:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait(5)
        print(log.read_text()[-2000:])

@pytest.fixture(scope='module')
def server(tmp_path_factory):
    # A cap of 12 kernels (CI machines differ in memory): room for the pool and a crowd of eight.
    yield from start_app(tmp_path_factory.mktemp('server') / 'digit_app.log')

@pytest.fixture(scope='module')
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()

class Visitor:
    "One person's page: external requests blocked and recorded, helpers to upload and wait for results."
    def __init__(self, browser, url: str, width: int = 1100, height: int = 900):
        self.url, self.external = url, []
        self.context = browser.new_context(viewport={'width': width, 'height': height}, accept_downloads=True)
        # Only requests that leave the machine are intercepted: local ones (like the kernel shutdown sent as the
        # page closes) go straight through.
        self.context.route(lambda url: not url.startswith(LOCAL), self._block)
        self.page = self.context.new_page()
        self.page.set_default_timeout(RESULT_TIMEOUT)

    def _block(self, route):
        self.external.append(route.request.url); route.abort()

    def open(self, wait: bool = True):
        "Ask for the page; `wait`: until it is usable, else return at once (`goto` would wait for the answer to begin)."
        if wait:
            self.page.goto(self.url, wait_until='commit', timeout=PAGE_TIMEOUT)
            return self.ready()
        self.page.evaluate('url => { location.href = url; }', self.url)
        return self

    def ready(self):
        self.page.locator('.digit-app .widget-upload').wait_for(timeout=PAGE_TIMEOUT)
        return self

    def ready_or_busy(self) -> bool:
        "Wait for the dashboard or the busy page; True for the dashboard."
        self.page.locator('.digit-app .widget-upload, .digit-busy').first.wait_for(timeout=PAGE_TIMEOUT)
        return self.page.locator('.digit-busy').count() == 0

    def kernel_id(self) -> str:
        return self.page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")

    def batch(self) -> int:
        el = self.page.query_selector('.digit-results')
        return int(el.get_attribute('data-batch')) if el else 0

    def choose(self, files):
        "Pick `files` in the upload dialog, as a person would."
        with self.page.expect_file_chooser() as fc:
            self.page.locator('.widget-upload').click()
        fc.value.set_files(files)

    def upload(self, files):
        "Upload `files` and wait for their results; the result and error elements, in order."
        n = self.batch()
        self.choose(files)
        return self.wait_batch(n + 1)

    def wait_batch(self, n: int):
        self.page.locator(f'.digit-results[data-batch="{n}"]').wait_for(timeout=RESULT_TIMEOUT)
        return self.page.locator('.digit-results > .digit-result, .digit-results > .digit-error').all()

    def shot(self, name: str):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f'{name}.png'), full_page=True)

    def close(self):
        "Leave as a person closing the tab does (Voila shuts the page's kernel down on `beforeunload`)."
        with self.page.expect_event('close'): self.page.close(run_before_unload=True)
        time.sleep(0.2)  # the shutdown beacon leaves after the page is gone; closing the context at once can drop it
        self.context.close()
        assert self.external == [], f"the page asked for external resources: {self.external}"

@pytest.fixture
def visitor(browser, server, request):
    v = Visitor(browser, server.url).open()
    yield v
    v.shot(request.node.name)
    v.close()

def shown(elements) -> list:
    return [(e.get_attribute('data-digit'), e.get_attribute('data-number')) for e in elements]

def download(page, link_selector: str) -> str:
    with page.expect_download() as dl:
        page.locator(link_selector).click()
    return Path(dl.value.path()).read_text(encoding='utf-8')

# ---------------------------------------------------------------- tests

def test_page_works_offline(visitor):
    "Title, help and both inputs are there, nothing was asked of the internet, and the icons still render."
    page = visitor.page
    assert page.title() == 'Digit reader'
    assert page.locator('h1').inner_text() == 'Digit reader'
    assert 'Upload photos' in page.locator('.digit-help').inner_text()
    assert page.locator('canvas.digit-pad-canvas').is_visible()
    assert page.locator('.digit-error').count() == 0  # the model loaded
    # The upload icon comes from Voila's bundled Font Awesome, not the CDN the stock template links.
    font = page.eval_on_selector('.widget-upload i', 'e => getComputedStyle(e).fontFamily')
    assert 'Font Awesome' in font
    loaded = page.evaluate("""async () => (await document.fonts.load('900 16px "Font Awesome 5 Free"', '\\uf093')).length""")
    assert loaded > 0, "the icon font did not load"

def test_page_loads_no_mathjax(browser, server):
    "Voila warms its MathJax typesetter up on every page; the dashboard has no maths, so none of MathJax's chunks is fetched (`serve.lazy_mathjax_chunk`)."
    from voila.paths import collect_static_paths
    from digit_nbdev.serve import lazy_mathjax_chunk
    paths = collect_static_paths(['voila', 'nbconvert'], 'lab')
    name, _ = lazy_mathjax_chunk(paths)
    plugin = next(Path(d) / name for d in paths if (Path(d) / name).is_file())
    mathjax = {f'{n}.voila.js' for n in re.findall(r'\.e\((\d+)\)', plugin.read_text(encoding='utf-8'))}  # what its typesetter loads
    v = Visitor(browser, server.url)
    fetched = []
    v.page.on('request', lambda r: fetched.append(r.url.rsplit('/', 1)[-1].split('?')[0]))
    try:
        v.open(); time.sleep(1)  # (Voila's render-outputs plugin runs as the page finishes starting)
        assert name in fetched and len(mathjax) > 5, (name, mathjax)
        assert not mathjax & set(fetched), f"MathJax was loaded: {sorted(mathjax & set(fetched))}"
        assert v.page.locator('.digit-error').count() == 0
    finally: v.close()

def test_upload_png_then_jpeg_and_download(visitor, digits):
    [r] = visitor.upload([payload('seven.png', encode(digits[7], 'PNG'))])
    assert shown([r]) == [('7', None)]
    assert r.locator('.digit-big').inner_text() == '7'
    assert r.locator('img').count() == 3 and all(i.get_attribute('alt') for i in r.locator('img').all())
    text = download(visitor.page, '.digit-upload-download a.digit-download')
    assert text.splitlines()[0] == 'Predicted digit: 7'
    # ipywidgets labels the button "Upload (<files in its value>)": "Upload (0)" once the dashboard has emptied it
    expect(visitor.page.locator('.widget-upload')).to_have_text('Upload')
    [r] = visitor.upload([payload('three.jpg', encode(digits[3], 'JPEG'), 'image/jpeg')])
    assert shown([r]) == [('3', None)]
    assert download(visitor.page, '.digit-upload-download a.digit-download').splitlines()[0] == 'Predicted digit: 3'

def test_upload_several_at_once_and_csv(visitor, digits):
    files = [payload('zero.png', encode(digits[0], 'PNG')), payload('one.jpg', encode(digits[1], 'JPEG'), 'image/jpeg'),
             payload('four.webp', encode(digits[4], 'WEBP'), 'image/webp'), payload('eight.gif', encode(digits[8], 'GIF'), 'image/gif'),
             payload('nine.bmp', encode(digits[9], 'BMP'), 'image/bmp'), payload('five.tiff', encode(digits[5], 'TIFF'), 'image/tiff')]
    results = visitor.upload(files)
    assert shown(results) == [('0', None), ('1', None), ('4', None), ('8', None), ('9', None), ('5', None)]
    rows = list(csv.DictReader(io.StringIO(download(visitor.page, '.digit-upload-download a.digit-download'))))
    assert list(rows[0]) == ['file', 'status', 'digit', 'confidence', 'number', 'low_confidence', 'error', 'line', 'box']
    assert all(r['low_confidence'] == 'false' and r['error'] == '' for r in rows)
    assert [(r['file'], r['status'], r['digit']) for r in rows] == [
        ('zero.png', 'ok', '0'), ('one.jpg', 'ok', '1'), ('four.webp', 'ok', '4'), ('eight.gif', 'ok', '8'),
        ('nine.bmp', 'ok', '9'), ('five.tiff', 'ok', '5')]
    assert all(0.9 < float(r['confidence']) <= 1 for r in rows)

def test_bad_file_then_good_file(visitor, digits):
    good = encode(digits[2], 'PNG')
    results = visitor.upload([payload('broken.png', good[:len(good) // 3]), payload('notes.png', b'just some text', 'text/plain')])
    assert [e.get_attribute('class') for e in results] == ['digit-error', 'digit-error']
    assert 'truncated or corrupt' in results[0].inner_text()
    assert 'not an image' in results[1].inner_text()
    assert 'Traceback' not in visitor.page.content()
    assert visitor.page.locator('.digit-status').inner_text().startswith('0 images read in ')
    assert visitor.page.locator('.digit-status').inner_text().endswith(', 2 could not be read.')
    rows = list(csv.DictReader(io.StringIO(download(visitor.page, '.digit-upload-download a.digit-download'))))
    assert [(r['file'], r['status']) for r in rows] == [('broken.png', 'error'), ('notes.png', 'error')]
    assert 'truncated or corrupt' in rows[0]['error'] and rows[1]['error'].startswith('not an image')
    visitor.shot('bad_file')
    assert shown(visitor.upload([payload('two.png', good)])) == [('2', None)]
    assert visitor.page.locator('.digit-error').count() == 0

def test_too_large_file_is_refused(visitor, digits):
    big = encode(digits[6], "PNG") + bytes(20_200_000)  # a real PNG with 20.2 MB of trailing bytes
    [e] = visitor.upload([payload('huge.png', big)])
    assert e.get_attribute('class') == 'digit-error' and 'too large' in e.inner_text()
    assert shown(visitor.upload([payload('six.png', encode(digits[6], 'PNG'))])) == [('6', None)]

def test_file_over_the_websocket_limit_is_refused(visitor, digits, tmp_path):
    # Sent, a 70 MB file would exceed the websocket's 64 MB message limit and drop the page's kernel connection.
    film = tmp_path / 'film.png'; film.write_bytes(encode(digits[3], 'PNG') + bytes(70_000_000))
    [e] = visitor.upload([str(film)])
    assert e.get_attribute('class') == 'digit-error' and 'file too large (70.0 MB' in e.inner_text()
    assert shown(visitor.upload([payload('three.png', encode(digits[3], 'PNG'))])) == [('3', None)]  # still connected

def test_files_chosen_together_over_the_websocket_limit(visitor, digits, tmp_path):
    # Four files of 19 MB, each under the limit, would be 76 MB in one message: the page sends the first two only.
    files = []
    for d in (4, 5, 7, 8):
        f = tmp_path / f'{d}.png'; f.write_bytes(encode(digits[d], 'PNG') + bytes(19_000_000)); files.append(str(f))
    results = visitor.upload(files)
    assert shown(results[:2]) == [('4', None), ('5', None)]
    assert [e.get_attribute('class') for e in results[2:]] == ['digit-error'] * 2 and 'not sent' in results[2].inner_text()
    assert shown(visitor.upload([files[2]])) == [('7', None)]  # still connected; alone, the file goes through

def test_blank_page_and_a_number(visitor, digits):
    blank = Image.new('RGB', (300, 200), (240, 236, 226))
    row = Image.new('RGB', (160 * 3, 160))
    for k, d in enumerate((2, 0, 7)): row.paste(digits[d], (160 * k, 0))
    results = visitor.upload([payload('blank.jpg', encode(blank, 'JPEG'), 'image/jpeg'), payload('207.png', encode(row, 'PNG'))])
    assert shown(results) == [('', None), ('', '207')]
    assert 'No digit found' in results[0].inner_text()
    assert results[1].locator('.digit-big').inner_text() == '207'

def _stroke(page, points, steps: int = 6):
    "Draw one stroke through `points` (fractions of the pad) with the mouse."
    box = page.locator('canvas.digit-pad-canvas').bounding_box()
    xy = [(box['x'] + fx * box['width'], box['y'] + fy * box['height']) for fx, fy in points]
    page.mouse.move(*xy[0]); page.mouse.down()
    for x, y in xy[1:]: page.mouse.move(x, y, steps=steps)
    page.mouse.up()

def _drawn(page, n: int):
    page.locator(f'.digit-pad-result[data-batch="{n}"]').wait_for(timeout=RESULT_TIMEOUT)
    return page.locator('.digit-pad-result .digit-result').get_attribute('data-digit')

def test_draw_a_one_then_a_seven(visitor):
    page = visitor.page
    _stroke(page, [(0.5, 0.15), (0.5, 0.85)])
    assert _drawn(page, 1) == '1'
    assert download(page, '.digit-pad-download a.digit-download').splitlines()[0] == 'Predicted digit: 1'
    visitor.shot('drawn_one')
    page.get_by_role('button', name='Clear').click()
    page.locator('.digit-pad-result').wait_for(state='detached', timeout=RESULT_TIMEOUT)
    _stroke(page, [(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)])
    assert _drawn(page, 2) == '7'

def test_a_dot_and_a_dash_on_the_pad_are_no_digit(visitor):
    "Issue 12: marks that are not digits get 'No digit found', not a confident made-up digit (a dot was '0, 98.7% sure')."
    page = visitor.page
    _stroke(page, [(0.5, 0.5), (0.51, 0.505)], steps=2)  # a dot: a tap of the pen
    assert _drawn(page, 1) == ''
    assert 'No digit found' in page.locator('.digit-pad-result').inner_text()
    page.get_by_role('button', name='Clear').click()
    page.locator('.digit-pad-result').wait_for(state='detached', timeout=RESULT_TIMEOUT)
    _stroke(page, [(0.35, 0.5), (0.65, 0.5)])  # a short dash
    assert _drawn(page, 2) == ''
    assert 'No digit found' in page.locator('.digit-pad-result').inner_text()

def test_eight_visitors_at_once(browser, server, digits):
    "A class arriving together: every page works (or says the reader is busy, never a blank page), every answer is right."
    visitors = [Visitor(browser, server.url) for _ in range(8)]
    try:
        for v in visitors: v.open(wait=False)  # all eight arrive together
        working = [v for v in visitors if v.ready_or_busy()]
        assert len(working) >= server.max_kernels - server.pool_size or len(working) == len(visitors), len(working)
        mine = [3, 8, 0, 6, 1, 2, 5, 9][:len(working)]
        for v, d in zip(working, mine): v.choose([payload(f'mine{d}.png', encode(digits[d], 'PNG'))])
        for v, d in zip(working, mine):
            assert shown(v.wait_batch(1)) == [(str(d), None)]
        for k, v in enumerate(visitors): v.shot(f'visitor{k}')
    finally:
        for v in visitors: v.close()
    # Their kernels go when they leave: only the preheated pool stays (memory does not grow with past visitors).
    end = time.time() + 30
    while len(kernels(server)) > server.pool_size and time.time() < end: time.sleep(0.5)
    assert len(kernels(server)) <= server.pool_size

def kernels(server) -> list:
    "The server's live kernel processes (a kernel that just exited may linger as a zombie: not counted)."
    return [p for p in psutil.Process(server.proc.pid).children(recursive=True) if _is_kernel(p)]

def _is_kernel(p) -> bool:
    try: return p.status() != psutil.STATUS_ZOMBIE and 'ipykernel' in ' '.join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess): return False

def _page_box(page, selector: str) -> dict:
    "The element's box in page coordinates (not the viewport's)."
    return page.eval_on_selector(selector, '''e => { const r = e.getBoundingClientRect();
        return {left: r.left + window.scrollX, top: r.top + window.scrollY, right: r.right + window.scrollX, bottom: r.bottom + window.scrollY}; }''')

def test_phone_width(browser, server, digits):
    v = Visitor(browser, server.url, width=390, height=844).open()
    try:
        [r] = v.upload([payload('four.png', encode(digits[4], 'PNG'))])
        assert shown([r]) == [('4', None)]
        overflow = v.page.evaluate('document.documentElement.scrollWidth - window.innerWidth')
        assert overflow <= 1, f"the page is {overflow} px wider than a phone screen"
        v.shot('phone')
        # The pad stays near the top, on the first screen, whatever was uploaded, and is centred in its panel.
        pad, panel = _page_box(v.page, 'canvas.digit-pad-canvas'), _page_box(v.page, '.digit-pad-panel')
        assert pad['bottom'] <= 844, f"the pad ends {pad['bottom']:.0f} px down the page, below the first screen (844 px)"
        assert abs((pad['left'] - panel['left']) - (panel['right'] - pad['right'])) <= 2, (pad, panel)
        assert _page_box(v.page, '.digit-results')['top'] > pad['bottom']  # the results come after it
    finally: v.close()

def test_server_log_is_quiet(server):
    "After all these visitors: no warning per visitor (untrusted notebook, unencrypted kernel), no upload timings."
    log = server.log.read_text()
    assert 'Voil' in log and 'is running at' in log, log[-2000:]
    log = without_kernel_shutdown_race(log)
    for noise in ('is not trusted', 'without encryption', 'digit_app INFO', 'Traceback'):
        assert noise not in log, f"{noise!r} in the server log:\n{log[-3000:]}"

def without_kernel_shutdown_race(log: str) -> str:
    "`log` without the one traceback that is ipykernel's, not ours: a kernel shutting down races its IOPub thread (ENOTSOCK; ipykernel#1518 fixed a sibling path)."
    blocks = re.split(r'(?m)^(?=\S)', log)  # a traceback's lines after its first are indented, its last line not
    def race(i): return (blocks[i].startswith('Traceback') and i + 1 < len(blocks) and 'iostream.py' in blocks[i]
                         and blocks[i + 1].startswith('zmq.error.ZMQError: Socket operation on non-socket'))
    racing = {j for i in range(len(blocks)) if race(i) for j in (i, i + 1)}
    return ''.join(b for i, b in enumerate(blocks) if i not in racing)

def test_kernels_talk_over_unix_sockets(server):
    "The server reaches its kernels over Unix sockets in its private runtime directory: no TCP port that another process could take while a kernel starts."
    end = time.time() + 60  # (the preheated kernel may still be starting)
    while not (ks := kernels(server)) and time.time() < end: time.sleep(0.5)
    assert ks, "no kernel (the preheated pool should hold one)"
    for k in ks:
        cmd = k.cmdline()
        conn = json.loads(Path(cmd[cmd.index('-f') + 1]).read_text())
        assert conn['transport'] == 'ipc', conn
        shell = Path(f"{conn['ip']}-{conn['shell_port']}")
        while not shell.exists() and time.time() < end: time.sleep(0.5)
        assert shell.is_socket(), shell
        assert Path(conn['ip']).parent.stat().st_mode & 0o077 == 0, "the sockets' directory is open to other users"

def test_size_the_browser_claims_is_not_believed(visitor, digits, tmp_path):
    "A page made to report a small size for a 30 MB file: the kernel counts the bytes it received and refuses it."
    big = tmp_path / 'liar.png'; big.write_bytes(encode(digits[7], 'PNG') + bytes(30_000_000))
    visitor.page.evaluate("Object.defineProperty(File.prototype, 'size', { get() { return 1000; } })")
    assert visitor.page.evaluate("new File(['x'.repeat(5000)], 'a').size") == 1000  # the guard and the widget both see 1000
    [e] = visitor.upload([str(big)])
    assert e.get_attribute('class') == 'digit-error' and 'file too large (30.0 MB' in e.inner_text()
    assert shown(visitor.upload([payload('seven.png', encode(digits[7], 'PNG'))])) == [('7', None)]

def kernel_pid(server, kernel_id: str) -> int:
    "The PID of the kernel the server knows by `kernel_id` (its API on 127.0.0.1 says it is there; its command line names its connection file)."
    with urllib.request.urlopen(f'{server.url}api/kernels/{kernel_id}', timeout=10) as r:
        assert r.status == 200
    [pid] = [p.pid for p in kernels(server) if f'kernel-{kernel_id}.json' in ' '.join(p.cmdline())]
    return pid

def test_killed_kernel_is_noticed(browser, server, digits):
    "Kill a visitor's kernel: the page says so in one line, and one click gives a working page again."
    v = Visitor(browser, server.url).open()
    try:
        assert shown(v.upload([payload('two.png', encode(digits[2], 'PNG'))])) == [('2', None)]
        lost = v.page.locator('.digit-lost')
        assert lost.is_hidden()
        os.kill(kernel_pid(server, v.kernel_id()), signal.SIGKILL)
        expect(lost).to_be_visible(timeout=30_000)
        assert 'connection to the digit reader was lost' in lost.inner_text()
        v.shot('kernel_lost')
        lost.get_by_role('button', name='Reload the page').click()
        v.ready()
        assert v.page.locator('.digit-lost').is_hidden()
        assert shown(v.upload([payload('five.png', encode(digits[5], 'PNG'))])) == [('5', None)]
    finally: v.close()

def _rss(server) -> int:
    "Resident memory of the server and its kernels, in bytes."
    procs = [psutil.Process(server.proc.pid)] + psutil.Process(server.proc.pid).children(recursive=True)
    total = 0
    for p in procs:
        try: total += p.memory_info().rss
        except psutil.NoSuchProcess: pass
    return total

def _get(url: str, timeout: float) -> tuple[int, float]:
    "Status and seconds of one plain GET (no browser: the page's kernel is never connected to)."
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r: r.read(); status = r.status
    except urllib.error.HTTPError as e: status = e.code
    return status, time.perf_counter() - t0

def test_get_flood_busy_page_and_culling(browser, digits, tmp_path):
    """200 bare GETs (8 at a time, at most 60 s): kernels never pass the cap, memory stays under the cap's budget, a
    visitor is answered within 5 s during the flood (a busy page) and gets a working page once the kernels nobody
    connected to are culled."""
    from concurrent.futures import ThreadPoolExecutor
    from digit_nbdev.serve import KERNEL_BYTES
    app = start_app(tmp_path / 'capped.log', '--idle-seconds', '5', pool_size=1, max_kernels=3)
    server = next(app)
    try:
        t_end, peak_kernels, peak_rss, statuses = time.time() + 60, 0, 0, []
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(lambda: _get(server.url, 30) if time.time() < t_end else (None, 0)) for _ in range(200)]
            while not all(f.done() for f in futures):
                peak_kernels, peak_rss = max(peak_kernels, len(kernels(server))), max(peak_rss, _rss(server))
                time.sleep(0.2)
                if time.time() > t_end + 35: pytest.fail("the flood did not end")
            statuses = [f.result()[0] for f in futures]
            # A visitor arriving while the server is full: answered at once, with the busy page.
            v = Visitor(browser, server.url).open(wait=False)
            t0 = time.perf_counter()
            assert not v.ready_or_busy() and time.perf_counter() - t0 < 5
            assert 'busy, try again in a moment' in v.page.locator('.digit-busy').inner_text()
            v.shot('busy_page'); v.close()
        print(f"flood: {statuses.count(200)} pages, {statuses.count(503)} busy; peak {peak_kernels} kernels, {peak_rss / 2**20:.0f} MB")
        assert statuses.count(200) + statuses.count(503) == 200 and statuses.count(503) > 150
        assert peak_kernels <= server.max_kernels
        assert peak_rss <= server.max_kernels * KERNEL_BYTES + 300 * 2**20  # the kernels' budget and the server's own
        status, seconds = _get(server.url, 10)
        assert status in (200, 503) and seconds < 5  # answered during the flood's aftermath
        # The kernels nobody connected to go (idle 5 s, checked every 15 s); then a visitor gets a working page.
        end = time.time() + 45
        while time.time() < end and len(kernels(server)) >= server.max_kernels: time.sleep(1)
        v = Visitor(browser, server.url).open()
        try: assert shown(v.upload([payload('eight.png', encode(digits[8], 'PNG'))])) == [('8', None)]
        finally: v.close()
    finally:
        app.close()

def test_slow_page_keeps_its_kernel(browser, digits, tmp_path):
    """A page slower to load than a kernel may stay unconnected (a slow connection; a crowd on a busy machine) keeps
    its kernel: it tells the server it is still loading (`serve.LOADING_SCRIPT`). Before, its kernel was culled as
    one nobody connected to, and the page stayed blank."""
    app = start_app(tmp_path / 'slow.log', '--idle-seconds', '10', pool_size=1, max_kernels=4)
    server = next(app)
    try:
        v = Visitor(browser, server.url)
        cdp = v.context.new_cdp_session(v.page)
        slow = {'offline': False, 'latency': 50, 'downloadThroughput': 120_000, 'uploadThroughput': 120_000}  # bytes/s: ~1 Mbit/s
        cdp.send('Network.enable'); cdp.send('Network.emulateNetworkConditions', slow)
        t0 = time.time()
        try:
            v.page.goto(server.url, wait_until='commit', timeout=PAGE_TIMEOUT)
            v.page.locator('.digit-app .widget-upload').wait_for(timeout=150_000)
            # Unconnected for longer than the idle time (10 s) and a cull round (every 15 s) together:
            assert time.time() - t0 > 30, f"the page loaded in {time.time() - t0:.0f} s: too fast to test this"
            cdp.send('Network.emulateNetworkConditions', slow | {'latency': 0, 'downloadThroughput': -1, 'uploadThroughput': -1})
            assert shown(v.upload([payload('seven.png', encode(digits[7], 'PNG'))])) == [('7', None)]
        finally: v.close()
    finally:
        app.close()

def test_token_asked_for_when_serving_beyond_loopback(tmp_path):
    "What `digit_app --host 0.0.0.0` runs, bound here to 127.0.0.1: no page without Jupyter's token, and no kernel started for one."
    from digit_nbdev.serve import host_warning, voila_command, write_voila_files
    assert 'token' in host_warning('0.0.0.0', proxy=False)
    port, root = free_port(), write_voila_files(tmp_path / 'jupyter')
    env = dict(os.environ, JUPYTER_PATH=str(root), JUPYTER_TOKEN='s3cret-token')
    with open(tmp_path / 'voila.log', 'wb') as out:
        proc = subprocess.Popen(voila_command(port, '127.0.0.1', no_browser=True, pool_size=0, root=root, token=True),
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        assert wait_for_port(port, proc), (tmp_path / 'voila.log').read_text()[-2000:]
        url = f'http://127.0.0.1:{port}/'
        opener = urllib.request.build_opener(type('NoRedirect', (urllib.request.HTTPRedirectHandler,), {'redirect_request': lambda *a: None}))
        try: status = opener.open(url, timeout=30).status
        except urllib.error.HTTPError as e: status = e.code
        assert status in (302, 403), status  # to the login page, or refused
        assert not [p for p in psutil.Process(proc.pid).children(recursive=True) if _is_kernel(p)]
        with urllib.request.urlopen(url + '?token=s3cret-token', timeout=120) as r:
            assert r.status == 200 and b'jupyter-config-data' in r.read()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(15)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait(5)
