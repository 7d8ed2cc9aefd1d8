"""`digit_predict` as a person runs it: output per file in order, JSON lines, exit codes, many files, bad input
(one line, quickly, bounded memory, never a digit), and no TensorFlow on the inference path."""
import json, os, re, subprocess, sys, textwrap
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from digit_nbdev.data import load_mnist
from digit_nbdev.photos import render_digit
from digit_nbdev.image_files import encode, png_bomb
from digit_nbdev.number_photos import number_line
from no_tensorflow import without_tensorflow

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}

def run(*args, timeout=120):
    return subprocess.run([str(BIN/'digit_predict'), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV)

@pytest.fixture(scope='module')
def mnist_test():
    return load_mnist()[1]

@pytest.fixture(scope='module')
def files(tmp_path_factory, mnist_test):
    "A photo of a digit, a blank page, a line of digits and a PDF."
    x, y = mnist_test
    d = tmp_path_factory.mktemp('cli')
    (d/'seven.jpg').write_bytes(encode(render_digit(x[0], 'paper', seed=1), 'JPEG', quality=90))
    (d/'two.png').write_bytes(encode(render_digit(x[1], 'ruled', seed=1), 'PNG'))
    (d/'blank.png').write_bytes(encode(Image.new('RGB', (640, 480), (236, 233, 226)), 'PNG'))
    (d/'line.png').write_bytes(encode(number_line([x[i] for i in (2, 3, 4)], seed=1), 'PNG'))
    (d/'notes.pdf').write_bytes(b'%PDF-1.4\n1 0 obj\n<<>>\nendobj\n')
    return d, f"{y[2]}{y[3]}{y[4]}"

def test_text_output_in_order_and_exit_1_on_failure(files, mnist_test):
    d, _ = files
    r = run(d/'seven.jpg', d/'blank.png', d/'notes.pdf', d/'two.png')
    lines = r.stdout.splitlines()
    assert r.returncode == 1, r.stderr
    assert [l.split(':')[0] for l in lines] == [str(d/n) for n in ('seven.jpg', 'blank.png', 'notes.pdf', 'two.png')]
    assert lines[0].startswith(f"{d/'seven.jpg'}: {mnist_test[1][0]} (")
    assert lines[1].endswith('no digit found')
    assert 'error: not an image we can read (it looks like a PDF document)' in lines[2]
    assert lines[3].startswith(f"{d/'two.png'}: {mnist_test[1][1]} (")
    assert 'Traceback' not in r.stdout + r.stderr

def test_exit_0_when_every_file_was_read(files):
    d, _ = files
    r = run(d/'seven.jpg', d/'blank.png')
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2

def test_json_lines_say_what_each_image_holds(files, mnist_test):
    d, number = files
    r = run('--json', d/'seven.jpg', d/'line.png', d/'blank.png', d/'notes.pdf')
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    keys = {'file', 'status', 'kind', 'digit', 'confidence', 'probabilities', 'number', 'low_confidence', 'turns', 'numbers', 'error'}
    assert all(set(row) == keys for row in rows)
    assert [row['status'] for row in rows] == ['ok', 'ok', 'no_digit', 'error']
    assert [row['kind'] for row in rows] == ['digit', 'number', 'nothing', None]
    seven, line, blank, pdf = rows
    assert seven['digit'] == mnist_test[1][0] and seven['number'] is None and [n['number'] for n in seven['numbers']] == [str(mnist_test[1][0])]
    assert len(seven['probabilities']) == 10 and abs(sum(seven['probabilities']) - 1) < 1e-3
    # A number is one answer: no digit beside it (the old output said "digit: 2" beside "number: 2026").
    assert line['number'] == number and line['digit'] is None and line['probabilities'] is None
    assert len(line['numbers']) == 1 and len(line['numbers'][0]['digits']) == len(number) and len(line['numbers'][0]['box']) == 4
    assert blank['digit'] is None and blank['confidence'] is None and blank['numbers'] == []
    assert pdf['digit'] is None and 'PDF' in pdf['error']

def test_digit_forces_one_digit(files, mnist_test):
    d, number = files
    r = run('--json', '--digit', d/'line.png')
    row = json.loads(r.stdout)
    # One digit or none, as predict answers (a whole line squeezed into 28x28 is seldom a digit): never the number.
    assert row['kind'] in ('digit', 'nothing') and row['number'] is None and [n['number'] for n in row['numbers']] != [number]
    r = run('--json', '--digit', d/'seven.jpg')
    assert json.loads(r.stdout)['kind'] == 'digit'
    r = run('--number', d/'line.png')  # kept for old scripts: reads the number, as the default does
    assert r.stdout.split(': ')[1].startswith(number)

def test_bad_usage_exits_2(files):
    d, _ = files
    r = run()
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    r = run('--model', d/'missing.keras', d/'seven.jpg')
    assert r.returncode == 2 and 'model file not found' in r.stderr and 'Traceback' not in r.stderr

def test_hundreds_of_files_in_order(tmp_path, mnist_test):
    x, y = mnist_test
    names = []
    for i in range(300):
        p = tmp_path/f'{i:03d}.png'; Image.fromarray(255 - x[i]).save(p); names.append(p)
    r = run('--json', *names)
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert r.returncode == 0 and [row['file'] for row in rows] == list(map(str, names))
    assert np.mean([row['digit'] == t for row, t in zip(rows, y[:300])]) >= 0.98

PROBE = textwrap.dedent('''
    import json, resource, sys, time
    from digit_nbdev.predict import predict
    from digit_nbdev.runtime import get_runner
    from digit_nbdev import DigitError
    get_runner()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.time()
    try: result = predict(sys.argv[1]).as_dict()
    except DigitError as e: result = dict(status='error', error=str(e))
    result.update(seconds=time.time() - t0, extra_mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024,
                  tensorflow='tensorflow' in sys.modules)
    print(json.dumps(result))''')

def probe(path):
    r = subprocess.run([sys.executable, '-c', PROBE, str(path)], capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

def bad_files(d: Path) -> dict:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300), dtype=np.uint8))
    png = encode(noisy, 'PNG')
    return {'empty.png': b'', 'text.png': b'just some text\n' * 10, 'truncated.png': png[:len(png) // 2],
            'random.jpg': np.random.default_rng(1).bytes(20000), 'doc.pdf': b'%PDF-1.7\n' + b'0' * 1000,
            'bomb.png': png_bomb(40000, 40000), 'under_pillow_limit.png': png_bomb(9400, 9400),
            'under_our_limit.png': png_bomb(7000, 7000)}

@pytest.mark.parametrize('name', list(bad_files(Path('.'))))
def test_bad_input_one_line_fast_bounded_memory(tmp_path, name):
    data = bad_files(tmp_path)[name]
    path = tmp_path/name; path.write_bytes(data)
    res = probe(path)
    assert res['seconds'] < 1.0 and res['extra_mb'] < 200, res
    if name == 'under_our_limit.png':  # 49 megapixels of black: decodes, and holds no digit
        assert res['status'] == 'no_digit' and res['digit'] is None
    else:
        assert res['status'] == 'error' and res.get('digit') is None
        assert '\n' not in res['error'] and len(res['error']) < 150
    r = run(path)
    assert r.returncode == (0 if res['status'] == 'no_digit' else 1), r
    assert len(r.stdout.splitlines()) == 1 and 'Traceback' not in r.stdout + r.stderr

def test_inference_path_does_not_import_tensorflow(files):
    d, _ = files
    assert probe(d/'seven.jpg')['tensorflow'] is False

def test_batch_must_be_at_least_1(files):
    d, _ = files
    for bad in ('0', '-1'):
        r = run('--batch', bad, d/'seven.jpg')
        assert (r.returncode, r.stdout, r.stderr) == (2, '', 'digit_predict: --batch must be at least 1\n'), (bad, r)

def test_keras_model_without_tensorflow_says_what_to_install(files, tmp_path):
    "The base install has no TensorFlow: `--model x.keras` ends in one line that says what to install, exit status 2."
    d, _ = files
    model = Path(__file__).resolve().parents[1]/'digit_nbdev'/'models'/'digit_cnn.keras'
    r = subprocess.run([str(BIN/'digit_predict'), '--model', str(model), str(d/'seven.jpg')], capture_output=True, text=True,
                       timeout=120, env=without_tensorflow(tmp_path, ENV))
    assert (r.returncode, r.stdout) == (2, ''), r
    assert r.stderr == "digit_predict: loading the Keras model digit_cnn.keras needs TensorFlow: pip install 'digit_nbdev[train]'\n"

def test_help_shows_flags_as_people_type_them():
    for tool in ('digit_predict', 'digit_app', 'digit_train'):
        r = subprocess.run([str(BIN/tool), '--help'], capture_output=True, text=True, timeout=120, env=ENV)
        assert r.returncode == 0 and 'usage:' in r.stdout, r
        assert '(default: False)' not in r.stdout and not re.search(r'--[a-z]+_[a-z]', r.stdout), r.stdout
    r = subprocess.run([str(BIN/'digit_app'), '--help'], capture_output=True, text=True, timeout=120, env=ENV)
    assert '--no-browser' in r.stdout and '--pool-size' in r.stdout and '--verbose' in r.stdout
