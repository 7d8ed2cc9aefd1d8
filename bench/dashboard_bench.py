"""Benchmark the dashboard as visitors see it, and print a table (a measurement, not a test).

For each kernel pool size (0: a kernel is started per visit; 1 or more: Voila's preheated kernels), starts
`digit_app`, waits until the server (and its pool) is ready, then with Chromium measures:

- page ready: from asking for the page to the dashboard on screen and usable (the kernel is up and the model
  is loaded: the page is only rendered once `Dashboard()` has loaded the model), for one visitor, then for four
  arriving together;
- prediction: from the files handed to the upload dialog to the result on screen, for a small PNG, and for a
  12-megapixel phone-like JPEG (transfer to the kernel included), and for a stroke on the drawing pad;
- memory: resident memory (RSS, and USS: the part no other process shares) of each visitor's kernel after
  its predictions, of an idle preheated kernel, and of the Voila server;
- a crowd: `--crowd` visitors (16 by default) arriving together, on a server whose cap leaves room for them all:
  the median and last time to a usable page, and how many got a working page, a busy page or nothing;
- where one visitor's start goes: a kernel started with jupyter_client and the dashboard's cell run in it in
  steps (kernel start, imports, model load, building and sending the page's widgets), repeated `--repeats` times.

With `--baseline DIR` (a checkout of an earlier commit, e.g. `git worktree add /tmp/base main`), only the crowd
is measured, `--rounds` times for each pool size, the baseline's server and this tree's taking turns (A/B in one
run: other work on the machine slows both alike), and the table gives the medians over the rounds.

Usage: python bench/dashboard_bench.py [--pool_sizes 0 1] [--repeats 10] [--crowd 16] [--baseline DIR --rounds 3 [--baseline_pool_size 1]]"""
import argparse, io, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import psutil
from PIL import Image
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_images() -> dict:
    "A small PNG of an MNIST test digit on paper, and the same digit as a 12-megapixel JPEG photo."
    from digit_nbdev.data import load_mnist
    x, y = load_mnist()[1]
    ink = np.asarray(Image.fromarray(x[0]).resize((160, 160), Image.BICUBIC), np.float32) / 255
    rng = np.random.default_rng(0)
    paper = lambda shape: np.array([238, 232, 218], np.float32) + rng.normal(0, 5, shape + (1,))
    small = Image.fromarray(np.clip(paper((160, 160)) * (1 - 0.85 * ink[..., None]), 0, 255).astype(np.uint8))
    big_ink = np.asarray(Image.fromarray(x[0]).resize((2400, 2400), Image.BICUBIC), np.float32) / 255
    photo = paper((3000, 4000))
    photo[300:2700, 800:3200] *= 1 - 0.85 * big_ink[..., None]
    out = {}
    for name, img, fmt in (('digit.png', small, 'PNG'), ('photo12mp.jpg', Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)), 'JPEG')):
        buf = io.BytesIO(); img.save(buf, fmt, quality=90); out[name] = buf.getvalue()
    return out

TREE = Path(__file__).resolve().parents[1]

class Server:
    "digit_app of `tree` (this checkout by default) on a free port, its output in a file; stopped with its kernels on exit."
    def __init__(self, pool_size: int, max_kernels: int = 0, tree: Path = TREE):
        self.port, self.pool_size = free_port(), pool_size
        self.log = Path(tempfile.mkstemp(prefix='digit_app_', suffix='.log')[1])
        app = Path(sys.executable).parent / 'digit_app'
        cap = ['--max_kernels', str(max_kernels)] if max_kernels else []  # (0: digit_app's default; and a tree without the cap can be measured)
        # The tree's package first on the path; a cache of its own, where digit_app writes its Voila template and
        # configuration (another server starting meanwhile, of another tree, would rewrite the shared one).
        self.cache = tempfile.mkdtemp(prefix='digit_app_cache_')
        env = os.environ | {'PYTHONPATH': os.pathsep.join([str(tree), *filter(None, [os.environ.get('PYTHONPATH')])]),
                            'XDG_CACHE_HOME': self.cache}
        self.proc = subprocess.Popen([str(app), '--no_browser', '--port', str(self.port), '--pool_size', str(pool_size), *cap],
                                     stdout=open(self.log, 'wb'), stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.url = f'http://127.0.0.1:{self.port}/'

    def wait(self, timeout: float = 120):
        "Until the server listens and, with preheating, its pool is full (a visitor arriving at a warm server)."
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None: raise RuntimeError(self.log.read_text()[-2000:])
            text = self.log.read_text(errors='replace')
            if 'is running at' in text and (self.pool_size == 0 or 'is filled with' in text): return self
            time.sleep(0.2)
        raise TimeoutError(f"digit_app not ready after {timeout} s")

    def kernels(self) -> list:
        "The live kernel processes (one that just exited may linger as a zombie: not counted)."
        def live_kernel(p):
            try: return p.status() != psutil.STATUS_ZOMBIE and 'ipykernel' in ' '.join(p.cmdline())
            except (psutil.NoSuchProcess, psutil.ZombieProcess): return False
        return [p for p in psutil.Process(self.proc.pid).children(recursive=True) if live_kernel(p)]

    def stop(self):
        try: os.killpg(self.proc.pid, signal.SIGTERM); self.proc.wait(20)
        except subprocess.TimeoutExpired: os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError: pass
        shutil.rmtree(self.cache, ignore_errors=True)

# Every request that would leave the machine is refused. The pattern is matched in Playwright's driver: a Python
# function as the matcher made every request of every page (about 130 each) wait for a round trip to this
# process, a cost no real visitor's page has (8 pages at once: ready after 19.3-19.7 s with it, 13.9-18.0 without).
NOT_LOCAL = re.compile(r'^(?!(?:http://127\.0\.0\.1|ws://127\.0\.0\.1|data:|blob:))')

def open_page(browser, url: str):
    ctx = browser.new_context(viewport={'width': 1100, 'height': 900})
    ctx.route(NOT_LOCAL, lambda r: r.abort())
    return ctx, ctx.new_page()

def leave(ctx, page):
    "Close the page as a tab closes (Voila then shuts its kernel down), then its browser context."
    with page.expect_event('close'): page.close(run_before_unload=True)
    time.sleep(0.2)  # let the shutdown beacon leave
    ctx.close()

def wait_ready(page):
    page.locator('.digit-app .widget-upload').wait_for(timeout=120_000)

def cpu_seconds(processes) -> float:
    "User and system CPU seconds of `processes` so far (those gone meanwhile count nothing)."
    total = 0.0
    for p in processes:
        try: c = p.cpu_times(); total += c.user + c.system
        except psutil.NoSuchProcess: pass
    return total

def browser_processes() -> list:
    "Chromium's processes (started by Playwright's driver, a child of this process)."
    return [p for p in psutil.Process().children(recursive=True) if 'chrom' in process_name(p)]

def process_name(p: psutil.Process) -> str:
    "`p`'s name, '' for a process gone since it was listed (a browser's helper processes come and go)."
    try: return p.name()
    except psutil.NoSuchProcess: return ''

@dataclass
class Crowd:
    "What a crowd got: seconds to each usable page, busy and blank pages; where the time went: the page's first byte (the server: a kernel started and the notebook run), and the CPU seconds of the browsers and of the server with its kernels."
    times: list
    busy: int
    blank: int
    first_byte: list
    cpu_browsers: float
    cpu_server: float

def crowd_times(browser, n: int, pool_size: int, tree: Path = TREE) -> Crowd:
    "`n` visitors asking for the page together: seconds to each usable page, and how many got a busy page or neither within 120 s."
    has_cap = '--max_kernels' in subprocess.run([str(Path(sys.executable).parent / 'digit_app'), '--help'], capture_output=True, text=True,
                                                env=os.environ | {'PYTHONPATH': str(tree)}).stdout
    server = Server(pool_size, max_kernels=n + pool_size + 1 if has_cap else 0, tree=tree).wait(timeout=120 + 10 * pool_size)  # (a large pool fills slowly on a busy machine)
    try:
        pages = [open_page(browser, server.url) for _ in range(n)]
        server_tree = lambda: [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(recursive=True)]
        cpu0 = cpu_seconds(browser_processes()), cpu_seconds(server_tree())
        t0 = time.perf_counter()
        # All ask at once: the navigation is started in each page without waiting for the server's answer
        # (`goto` would wait for the response to begin, which for a page whose kernel is starting is seconds).
        for ctx, page in pages: page.evaluate('url => { location.href = url; }', server.url)
        times, busy, blank = [], 0, 0
        for ctx, page in pages:
            try:
                page.locator('.digit-app .widget-upload, .digit-busy').first.wait_for(timeout=max(1, 120_000 - 1000 * (time.perf_counter() - t0)))
                if page.locator('.digit-busy').count(): busy += 1
                else: times.append(time.perf_counter() - t0)
            except Exception: blank += 1
        cpu = cpu_seconds(browser_processes()) - cpu0[0], cpu_seconds(server_tree()) - cpu0[1]  # (the kernels still live)
        first_byte = [page.evaluate('performance.getEntriesByType("navigation")[0]?.responseStart / 1000 || null') for ctx, page in pages]
        for ctx, page in pages: leave(ctx, page)
        return Crowd(times, busy, blank, [t for t in first_byte if t], *cpu)
    finally: server.stop()

def crowd(browser, n: int, pool_size: int) -> dict:
    "`n` visitors asking for the page together: seconds to a usable page (median, last), and how many got one, a busy page or neither within 120 s."
    c = crowd_times(browser, n, pool_size)
    times, busy, blank = c.times, c.busy, c.blank
    return {f'page ready, {n} at once': f'{statistics.median(times):.1f} s median, {max(times):.1f} s last' if times else '-',
            f'{n} at once: working / busy / blank': f'{len(times)} / {busy} / {blank}'}

def crowd_ab(browser, n: int, pool_size: int, baseline: Path, rounds: int, baseline_pool: int | None = None) -> dict:
    "The crowd on the baseline's server (its pool: `baseline_pool`, by default `pool_size`) and on this tree's, taking turns `rounds` times: medians over the rounds of each round's median and last."
    rows = {'baseline': {}, 'this tree': {}}
    runs = {name: [] for name in rows}
    for r in range(rounds):
        for name, tree in (('baseline', baseline), ('this tree', TREE)) if r % 2 == 0 else (('this tree', TREE), ('baseline', baseline)):
            c = crowd_times(browser, n, pool_size if name == 'this tree' or baseline_pool is None else baseline_pool, tree)
            runs[name].append(c)
            print(f"  round {r + 1}, {name}: " + (f"median {statistics.median(c.times):.1f} s, last {max(c.times):.1f} s, " if c.times else '')
                  + f"working / busy / blank {len(c.times)} / {c.busy} / {c.blank}; first byte median "
                  + (f"{statistics.median(c.first_byte):.1f} s" if c.first_byte else '-')
                  + f"; CPU: browsers {c.cpu_browsers:.0f} s, server and kernels {c.cpu_server:.0f} s", flush=True)
    med = lambda xs: statistics.median(xs) if xs else float('nan')
    for name, cs in runs.items():
        ok = [c.times for c in cs if c.times]
        row = rows[name]
        row[f'page ready, {n} at once (median of {rounds} rounds)'] = (
            f'{med([statistics.median(t) for t in ok]):.1f} s median, {med([max(t) for t in ok]):.1f} s last' if ok else '-')
        row[f'{n} at once: working / busy / blank (all rounds)'] = f'{sum(len(c.times) for c in cs)} / {sum(c.busy for c in cs)} / {sum(c.blank for c in cs)}'
        row["page's first byte (the server's part), median"] = f'{med([med(c.first_byte) for c in cs]):.1f} s'
        row['CPU during the crowd: browsers / server and kernels'] = f'{med([c.cpu_browsers for c in cs]):.0f} s / {med([c.cpu_server for c in cs]):.0f} s'
    return rows

def start_cost(repeats: int) -> dict:
    "Where one visitor's kernel spends its start (median of `repeats` kernels): kernel start, imports, model load, the page's widgets."
    from jupyter_client.manager import start_new_kernel
    steps = {'kernel start': None, 'imports': 'from digit_nbdev.dashboard import Dashboard',
             'model load and widgets': 'd = Dashboard()', 'page sent (display)': 'd.show()'}
    times = {k: [] for k in steps}
    for _ in range(repeats):
        t0 = time.perf_counter()
        km, kc = start_new_kernel(kernel_name='python3')
        times['kernel start'].append(time.perf_counter() - t0)
        try:
            for k, code in steps.items():
                if code is None: continue
                t0 = time.perf_counter()
                reply = kc.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
                assert reply['content']['status'] == 'ok', reply['content']
                times[k].append(time.perf_counter() - t0)
        finally: kc.stop_channels(); km.shutdown_kernel(now=True)
    return {f'start cost: {k}': f'{statistics.median(v):.2f} s' for k, v in times.items()}

def time_ready(browser, url: str, n: int = 1) -> list[float]:
    "Seconds from asking for the page to a usable dashboard, for `n` visitors arriving together."
    pages, t0 = [], time.perf_counter()
    for _ in range(n):
        ctx, page = open_page(browser, url)
        page.goto(url, wait_until='commit'); pages.append((ctx, page))
    times = []
    for ctx, page in pages:
        wait_ready(page); times.append(time.perf_counter() - t0)
    return times, pages

def time_upload(page, name: str, data: bytes, batch: int) -> float:
    "Seconds from the file handed to the upload dialog to its result on screen."
    with page.expect_file_chooser() as fc: page.locator('.widget-upload').click()
    t0 = time.perf_counter()
    fc.value.set_files([{'name': name, 'mimeType': 'image/jpeg' if name.endswith('jpg') else 'image/png', 'buffer': data}])
    page.locator(f'.digit-results[data-batch="{batch}"] .digit-result').wait_for(timeout=60_000)
    return time.perf_counter() - t0

def time_drawing(page, n: int) -> float:
    "Seconds from releasing the mouse after a stroke to the prediction on screen."
    if n > 1:  # the same stroke again would be the same picture: clear first
        page.get_by_role('button', name='Clear').click()
        page.locator('.digit-pad-result').wait_for(state='detached')
    box = page.locator('canvas.digit-pad-canvas').bounding_box()
    x, y0, y1 = box['x'] + box['width'] / 2, box['y'] + 0.15 * box['height'], box['y'] + 0.85 * box['height']
    page.mouse.move(x, y0); page.mouse.down(); page.mouse.move(x, y1, steps=8)
    t0 = time.perf_counter(); page.mouse.up()
    page.locator(f'.digit-pad-result[data-batch="{n}"]').wait_for(timeout=60_000)
    return time.perf_counter() - t0

def mb(b: float) -> str: return f'{b / 2**20:.0f} MB'

def stats(xs) -> str: return f'{statistics.median(xs):.2f} s (max {max(xs):.2f})'

def bench(browser, pool_size: int, repeats: int, images: dict) -> dict:
    server = Server(pool_size).wait()
    row = {}
    try:
        [ready], [(ctx, page)] = time_ready(browser, server.url)
        row['page ready, 1 visitor'] = f'{ready:.2f} s'
        up = {name: [time_upload(page, name, data, 1 + k + i * repeats) for k in range(repeats)]
              for i, (name, data) in enumerate(images.items())}
        row['prediction, small PNG'] = stats(up['digit.png'])
        row['prediction, 12 MP JPEG'] = stats(up['photo12mp.jpg'])
        row['prediction, drawing'] = stats([time_drawing(page, k + 1) for k in range(repeats)])
        busy = max(server.kernels(), key=lambda p: p.memory_info().rss)
        row['kernel RSS per visitor'] = f'{mb(busy.memory_info().rss)} (USS {mb(busy.memory_full_info().uss)})'
        leave(ctx, page)
        time.sleep(3)  # let the pool refill
        times, pages = time_ready(browser, server.url, 4)
        row['page ready, 4 at once'] = f'{statistics.median(times):.2f} s median, {max(times):.2f} s last'
        for c, pg in pages: leave(c, pg)
        time.sleep(5)
        row['kernels 5 s after all left'] = f'{len(server.kernels())} (pool {pool_size})'
        idle = [p for p in server.kernels() if p.pid != busy.pid]
        if pool_size and idle: row['idle preheated kernel RSS'] = mb(min(p.memory_info().rss for p in idle))
        row['Voila server RSS'] = mb(psutil.Process(server.proc.pid).memory_info().rss)
    finally: server.stop()
    return row

def table(rows: dict, cols: list):
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    w = max(map(len, keys))
    widths = [max(len(c), *(len(r.get(k, '-')) for k in keys)) for c, r in zip(cols, rows.values())]
    print('\n| ' + 'measure'.ljust(w) + ' | ' + ' | '.join(c.ljust(cw) for c, cw in zip(cols, widths)) + ' |')
    print('|' + '-' * (w + 2) + '|' + '|'.join('-' * (cw + 2) for cw in widths) + '|')
    for k in keys:
        print('| ' + k.ljust(w) + ' | ' + ' | '.join(r.get(k, '-').ljust(cw) for r, cw in zip(rows.values(), widths)) + ' |')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pool_sizes', type=int, nargs='+', default=[0, 1], help='kernel pool sizes to compare')
    ap.add_argument('--repeats', type=int, default=10, help='uploads and drawings per measurement')
    ap.add_argument('--crowd', type=int, default=16, help='visitors arriving together (0: no crowd)')
    ap.add_argument('--baseline', type=Path, help='a checkout of an earlier commit: measure only the crowd, A/B against it')
    ap.add_argument('--rounds', type=int, default=3, help='with --baseline: crowds per tree and pool size, taking turns')
    ap.add_argument('--baseline_pool_size', type=int, help="with --baseline: the baseline's pool size (default: the same as this tree's), e.g. as shipped")
    args = ap.parse_args()
    if args.baseline: return main_ab(args)
    images = test_images()
    print(f"test files: " + ', '.join(f'{k} {len(v) / 1e3:.0f} kB' for k, v in images.items()), flush=True)
    rows = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path='/usr/bin/chromium', args=CHROMIUM_ARGS)
        for n in args.pool_sizes:
            print(f"measuring pool_size={n} ...", flush=True)
            rows[n] = bench(browser, n, args.repeats, images)
            if args.crowd:
                print(f"a crowd of {args.crowd}, pool_size={n} ...", flush=True)
                rows[n] |= crowd(browser, args.crowd, n)
        browser.close()
    print("start cost ...", flush=True)
    cost = start_cost(args.repeats)
    for r in rows.values(): r |= cost  # (the same for every pool size: measured once, outside Voila)
    table(rows, [f'pool_size={n}' + (' (preheated)' if n else ' (kernel per visit)') for n in rows])
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (other work on the machine slows every figure).")

def main_ab(args):
    rows = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path='/usr/bin/chromium', args=CHROMIUM_ARGS)
        for n in args.pool_sizes:
            print(f"a crowd of {args.crowd}, pool_size={n}, baseline {args.baseline} and this tree taking turns ...", flush=True)
            for name, row in crowd_ab(browser, args.crowd, n, args.baseline, args.rounds, args.baseline_pool_size).items(): rows[(n, name)] = row
        browser.close()
    bpool = lambda n: n if args.baseline_pool_size is None else args.baseline_pool_size
    table(rows, [f'pool_size={n if name == "this tree" else bpool(n)}, {name}' for n, name in rows])
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (other work on the machine slows every figure).")

if __name__ == '__main__':
    main()
