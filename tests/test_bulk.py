"""`digit_predict` on many files as a person runs it: records streamed to --out as they come, --resume after a
SIGKILL (no input twice, none missing), --from - (standard input), a bad file among many, URLs (file:// and a
local HTTP server), a Dask cluster (--workers, --scheduler), and a progress bar only on a terminal."""
import fcntl, functools, http.server, struct, termios, json, os, pty, signal, subprocess, sys, threading, time
from pathlib import Path
import cv2
import pytest
from digit_nbdev.data import load_mnist
from digit_nbdev.predict import predict_many

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}

def cmd(*args): return [str(BIN/'digit_predict'), *map(str, args)]

def run(*args, timeout=180, **kw):
    return subprocess.run(cmd(*args), capture_output=True, text=True, timeout=timeout, env=ENV, **kw)

def rows(path: Path) -> list[dict]: return [json.loads(l) for l in path.read_text().splitlines()]

@pytest.fixture(scope='module')
def mnist_test(): return load_mnist()[1]

@pytest.fixture(scope='module')
def folder(tmp_path_factory, mnist_test):
    "1,200 MNIST test digits as PNG files in two subfolders, and their names in the order a folder is read."
    x, y = mnist_test
    d = tmp_path_factory.mktemp('bulk')
    names = []
    for i in range(1200):
        sub = d/('a' if i < 600 else 'b'); sub.mkdir(exist_ok=True)
        cv2.imwrite(str(sub/f'{i:05d}.png'), 255 - x[i]); names.append(str(sub/f'{i:05d}.png'))
    return d, names, list(y[:1200])

def test_a_folder_to_jsonl_in_order_and_right(folder, tmp_path):
    d, names, labels = folder
    r = run(d, '--out', tmp_path/'out.jsonl', '--batch', 100)
    assert (r.returncode, r.stdout, r.stderr) == (0, '', ''), r  # (no progress bar: standard error is no terminal)
    got = rows(tmp_path/'out.jsonl')
    assert [g['file'] for g in got] == names
    assert sum(g['digit'] == t for g, t in zip(got, labels)) >= 0.98 * len(names)

def test_worker_processes_read_as_this_process_does(folder):
    "A pool's worker processes, every runtime on one thread (`runtime.one_thread_each`), give the very records this process gives."
    from digit_nbdev.bulk import Engine, read_bulk, read_records
    _, names, _ = folder
    pooled = [r for c in read_bulk(names[:400], chunk=100, engine=Engine.PROCESSES, workers=2) for r in c]
    assert pooled == read_records(names[:400])

def test_records_are_written_as_they_come(folder, tmp_path):
    "The first chunks' records are in the file, as whole lines, while the rest are still being read."
    d, names, _ = folder
    out = tmp_path/'out.jsonl'
    p = subprocess.Popen(cmd(d, '--out', out, '--batch', 50), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen, deadline = [], time.time() + 120
        while p.poll() is None and time.time() < deadline:
            if out.exists() and out.stat().st_size: seen.append(len(out.read_text().splitlines()))
            time.sleep(0.05)
        assert p.wait(timeout=120) == 0
        assert any(0 < n < len(names) for n in seen), seen  # (part of the output was there before the end)
        assert len(rows(out)) == len(names)
    finally:
        if p.poll() is None: p.kill()

def test_resume_after_sigkill_reads_every_input_once(folder, tmp_path):
    d, names, labels = folder
    out = tmp_path/'out.csv'
    p = subprocess.Popen(cmd(d, '--out', out, '--batch', 50), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None and (not out.exists() or len(out.read_text().splitlines()) < 300): time.sleep(0.02)
        assert p.poll() is None, "the run ended before it could be killed"
    finally: os.killpg(p.pid, signal.SIGKILL); p.wait()  # (the CLI and its worker processes: the session it started)
    before = out.read_text()
    with open(out, 'a') as f: f.write(names[-1] + ',ok,dig')  # a line cut short, as a kill mid-write leaves it
    r = run(d, '--out', out, '--resume', '--batch', 50)
    assert r.returncode == 0, r.stderr
    import csv
    with open(out, newline='') as f: got = list(csv.DictReader(f))
    assert out.read_text().startswith(before.rsplit('\n', 1)[0])  # (what was written is kept)
    assert sorted(g['file'] for g in got) == sorted(names)  # every input once: none twice, none missing
    digit = {g['file']: g['digit'] for g in got}
    assert sum(digit[n] == str(t) for n, t in zip(names, labels)) >= 0.98 * len(names)

def test_from_standard_input_and_a_bad_file_among_many(folder, tmp_path, mnist_test):
    d, names, labels = folder
    bad = tmp_path/'bad.png'; bad.write_bytes(b'%PDF-1.4 not an image')
    listed = names[:500] + [str(bad)] + names[500:1000] + [str(tmp_path/'missing.png')]
    r = run('--from', '-', '--out', tmp_path/'out.jsonl', '--batch', 100, input='\n'.join(listed) + '\n')
    assert r.returncode == 1 and r.stdout == ''
    errors = r.stderr.splitlines()  # one line per bad input, and nothing else
    assert errors == [f"digit_predict: {bad}: error: not an image we can read (it looks like a PDF document); use PNG, JPEG, GIF, BMP, WebP or TIFF",
                      f"digit_predict: {tmp_path/'missing.png'}: error: file not found: {tmp_path/'missing.png'}"], r.stderr
    got = rows(tmp_path/'out.jsonl')
    assert [g['file'] for g in got] == listed
    assert [g['status'] for g in got].count('error') == 2
    assert sum(g['digit'] == t for g, t in zip(got[:500], labels)) >= 490

def test_file_and_http_urls(folder, tmp_path, mnist_test):
    d, names, labels = folder
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(d/'a')))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}'
        r = run('--json', f'{url}/00003.png', f'{url}/nothing.png', 'file://' + names[4], timeout=120)
    finally: server.shutdown(); server.server_close()
    got = [json.loads(l) for l in r.stdout.splitlines()]
    assert r.returncode == 1 and [g['file'] for g in got] == [f'{url}/00003.png', f'{url}/nothing.png', 'file://' + names[4]]
    assert (got[0]['digit'], got[2]['digit']) == (labels[3], labels[4])
    assert got[1]['status'] == 'error' and got[1]['error'].startswith(f'cannot fetch {url}/nothing.png: FileNotFoundError')

def test_dask_local_cluster_and_a_running_scheduler(folder, tmp_path):
    "--workers 2 starts a LocalCluster; --scheduler uses a running one (whose scheduler sees the chunks), as `predict_many(client=...)` does."
    distributed = pytest.importorskip('distributed')
    d, names, labels = folder
    r = run(d/'a', '--workers', 2, '--batch', 50, '--out', tmp_path/'local.jsonl', timeout=120)
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert [g['file'] for g in rows(tmp_path/'local.jsonl')] == names[:600]
    from digit_nbdev.bulk import Format, read_records
    assert (tmp_path/'local.jsonl').read_text() == Format.JSONL.lines(read_records(names[:600]))  # (the workers' lines are the very lines the in-process path writes)
    import logging
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, scheduler_port=0, dashboard_address=':0',
                                  host='127.0.0.1', silence_logs=logging.ERROR) as cluster:
        r = run('--scheduler', cluster.scheduler_address, '--batch', 50, '--out', tmp_path/'remote.jsonl', *names[:300], timeout=120)
        assert r.returncode == 0, r.stderr
        assert 'worker_records' in cluster.scheduler.task_prefixes  # (read there, not here)
        x = load_mnist()[1][0][:300]
        with distributed.Client(cluster) as client: there = predict_many(list(x), client=client)
        assert 'read' in cluster.scheduler.task_prefixes and [p.as_dict() for p in there] == [p.as_dict() for p in predict_many(list(x))]
    assert rows(tmp_path/'remote.jsonl') == rows(tmp_path/'local.jsonl')[:300]
    r = run('--scheduler', 'tcp://127.0.0.1:9', '--batch', 50, *names[:300], timeout=60)
    assert r.returncode == 2 and r.stderr.startswith('digit_predict: cannot reach the Dask scheduler at tcp://127.0.0.1:9') and len(r.stderr.splitlines()) == 1

def test_progress_bar_only_on_a_terminal(folder, tmp_path):
    d, names, _ = folder
    main, sub = pty.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 100, 0, 0))  # (a terminal 100 columns wide)
    p = subprocess.Popen(cmd(d/'a', '--out', tmp_path/'out.jsonl', '--batch', 100), env=ENV, stdout=subprocess.DEVNULL, stderr=sub)
    os.close(sub)
    shown, deadline = b'', time.time() + 120
    try:
        while time.time() < deadline:  # (read as it comes: a full terminal buffer would stop the CLI)
            try: chunk = os.read(main, 65536)
            except OSError: break  # (the CLI has ended and closed its end)
            if not chunk: break
            shown += chunk
        p.wait(timeout=60)
    finally:
        os.close(main)
        if p.poll() is None: p.kill()
    assert p.returncode == 0 and b'600/600' in shown and b'files/s' in shown, shown[-300:]

def test_usage_errors(tmp_path):
    for args, message in ((('--resume',  'x.png'), '--resume needs --out'), (('--out', tmp_path/'o.txt', 'x.png'), 'the output is a .jsonl or .csv file'),
                          (('--from', tmp_path/'none.txt',), 'cannot read the list of inputs'), (('--workers', 0, 'x.png'), '--workers must be at least 1')):
        r = run(*args)
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.splitlines()) == 1, (args, r)
