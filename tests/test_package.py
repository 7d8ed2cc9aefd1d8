"""The package as users get it: a wheel built from the repo carries the LiteRT models, their cards and the dashboard
notebook (not the Keras copy of the model); `pip install <wheel>` (the base install, no extras) into an empty venv
runs `digit_predict` and imports the dashboard without TensorFlow; the metadata offers [train] and [dev]."""
import email, json, os, shutil, subprocess, sys, venv, zipfile
from pathlib import Path
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')} | {'TF_CPP_MIN_LOG_LEVEL': '2'}
# What a build needs from the checkout: everything but the venv, git, build output and generated or run files.
IGNORE = shutil.ignore_patterns('.venv', '.git', 'build', 'dist', '*.egg-info', 'runs', 'artifacts', '_docs', '_proc',
                                '__pycache__', '*.pyc', '.ipynb_checkpoints', '.pytest_cache')

def source_copy(dest: Path) -> Path:
    "A copy of the checkout to build from: an in-tree build would reuse (and ship) stale files left in `build/`."
    shutil.copytree(ROOT, dest, ignore=IGNORE)
    return dest

def build_wheel(src: Path, out: Path, isolation: bool) -> tuple[Path, str]:
    cmd = [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-w', str(out), str(src)]
    r = subprocess.run(cmd + ([] if isolation else ['--no-build-isolation']), capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob('digit_nbdev-*.whl')
    return whl, r.stdout + r.stderr

@pytest.fixture(scope='session')
def wheel(tmp_path_factory):
    "The wheel, built offline with the setuptools of this venv."
    tmp = tmp_path_factory.mktemp('wheel')
    return build_wheel(source_copy(tmp/'src'), tmp/'dist', isolation=False)[0]

def index_reachable() -> str | None:
    "None if pip's index (as configured here) answers for a base requirement, else why not."
    r = subprocess.run([sys.executable, '-m', 'pip', 'index', 'versions', 'ai-edge-litert', '--timeout', '20', '--retries', '1'],
                       capture_output=True, text=True, env=ENV, timeout=120)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ['no answer'])[-1]

@pytest.fixture(scope='session')
def base_venv(wheel, tmp_path_factory):
    "One empty venv per test session with `pip install <wheel>`: the base requirements from the registry, no extras."
    if why := index_reachable(): pytest.skip(f"the base install needs PyPI: {why}")
    env_dir = tmp_path_factory.mktemp('base_venv')/'venv'
    venv.create(env_dir, with_pip=True)
    r = subprocess.run([str(env_dir/'bin'/'python'), '-m', 'pip', 'install', '-q', str(wheel)], capture_output=True, text=True,
                       cwd=env_dir.parent, env=ENV, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    return env_dir

def in_venv(env_dir: Path, *args, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(env_dir/'bin'/args[0]), *map(str, args[1:])], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=300, **kw)

def metadata(whl: Path):
    z = zipfile.ZipFile(whl)
    (name,) = [n for n in z.namelist() if n.endswith('.dist-info/METADATA')]
    return email.message_from_bytes(z.read(name))

def test_wheel_ships_what_inference_reads(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for f in ('digit_cnn.tflite', 'digit_cnn.json', 'digit_cnn.md', 'digit_cnn_int8.tflite', 'digit_cnn_int8.json',
              'digit_check.tflite', 'digit_check_hard.tflite', 'digit_check_int8.tflite', 'digit_check_hard_int8.tflite', 'segment_check.tflite', 'segment_check.md',
              'line_reader.tflite', 'line_reader.md', 'upright.tflite', 'upright.json'):
        assert f'digit_nbdev/models/{f}' in names
    assert 'digit_nbdev/app/dashboard.ipynb' in names
    # The Keras model and its training log are for training and stay in the sdist (MANIFEST.in).
    assert not any(n.endswith(('.keras', '.h5', 'history.csv')) for n in names), names
    assert not any('runs/' in n or n.startswith(('nbs/', 'tests/')) or '__pycache__' in n for n in names), names

def test_metadata_base_has_no_tensorflow_and_extras_add_it(wheel):
    m = metadata(wheel)
    reqs = m.get_all('Requires-Dist')
    base = [r for r in reqs if 'extra ==' not in r]
    assert not any(r.lower().startswith(('tensorflow', 'keras')) for r in base), base
    assert any(r.startswith('ai-edge-litert') for r in base) and any(r.startswith('voila') for r in base)
    assert set(m.get_all('Provides-Extra')) == {'train', 'dask', 'dev'}
    # [dask]: the cluster engine and fsspec, without TensorFlow; [dev] has it too, so that the tests run.
    dask = [r for r in reqs if 'extra == "dask"' in r]
    assert any(r.startswith('dask[distributed]') for r in dask) and not any(r.startswith('tensorflow') for r in dask), dask
    assert any(r.startswith('dask[distributed]') and 'extra == "dev"' in r for r in reqs)
    for extra in ('train', 'dev'):
        tf = [r for r in reqs if r.startswith('tensorflow') and f'extra == "{extra}"' in r]
        # tensorflow-cpu where it has wheels (Linux and Windows x86-64), tensorflow elsewhere (macOS arm64, aarch64).
        assert sorted(r.split('<')[0].split('>')[0] for r in tf) == ['tensorflow', 'tensorflow-cpu'], tf
    assert not any(c.startswith('License ::') for c in m.get_all('Classifier'))

def test_isolated_build_is_free_of_setuptools_warnings(tmp_path):
    "Built as pip builds it for users (isolated, the newest setuptools): no 'Package would be ignored', no deprecations."
    if why := index_reachable(): pytest.skip(f"an isolated build fetches setuptools from PyPI: {why}")
    whl, log = build_wheel(source_copy(tmp_path/'src'), tmp_path/'dist', isolation=True)
    for bad in ('would be ignored', 'is absent from the `packages`', 'deprecated', 'SetuptoolsDeprecationWarning', 'BuildBackendWarning'):
        assert bad not in log, log
    assert metadata(whl)['License-Expression'] == 'Apache-2.0'

@pytest.fixture(scope='session')
def images(tmp_path_factory):
    "A drawn 7 and a drawn line '71'."
    d = tmp_path_factory.mktemp('images')
    im = Image.new('L', (200, 200), 255)
    ImageDraw.Draw(im).line([(50, 40), (150, 40), (90, 170)], fill=0, width=14)
    im.save(d/'seven.png')
    im = Image.new('L', (400, 160), 255); draw = ImageDraw.Draw(im)
    draw.line([(30, 30), (90, 30), (55, 130)], fill=0, width=10); draw.line([(150, 30), (150, 130)], fill=0, width=10)
    im.save(d/'seventy_one.png')
    return d

def test_base_install_has_no_tensorflow(base_venv, tmp_path):
    r = in_venv(base_venv, 'python', '-c', "import importlib.metadata as m, sys\n"
                "for n in ('tensorflow', 'tensorflow-cpu', 'keras'):\n"
                "    try: m.version(n); sys.exit(n + ' is installed')\n"
                "    except m.PackageNotFoundError: pass", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = in_venv(base_venv, 'python', '-c', 'import tensorflow', cwd=tmp_path)
    assert r.returncode != 0 and 'ModuleNotFoundError' in r.stderr

def test_base_install_runs_digit_predict(base_venv, images):
    r = in_venv(base_venv, 'digit_predict', '--json', images/'seven.png', images/'seventy_one.png', cwd=images)
    assert r.returncode == 0, r.stderr
    seven, line = map(json.loads, r.stdout.splitlines())
    assert (seven['file'], seven['status'], seven['digit']) == (str(images/'seven.png'), 'ok', 7) and seven['confidence'] > 0.9
    assert len(seven['probabilities']) == 10 and seven['error'] is None
    assert line['number'] == '71'  # the line reader and the segment check (both LiteRT) ship too

def test_base_install_imports_every_module_and_the_dashboard_without_tensorflow(base_venv, images):
    code = """import importlib, pkgutil, sys, numpy as np
from importlib import resources
import digit_nbdev
assert digit_nbdev.__file__.startswith(sys.prefix), digit_nbdev.__file__
for m in pkgutil.iter_modules(digit_nbdev.__path__): importlib.import_module('digit_nbdev.' + m.name)  # every module imports
import digit_nbdev.inference as i, digit_nbdev.dashboard as d
assert (resources.files('digit_nbdev') / 'app' / 'dashboard.ipynb').is_file()
i.predict('seven.png'); d.probability_chart(np.full(10, 0.1))
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))
assert not loaded, loaded
"""
    r = in_venv(base_venv, 'python', '-c', code, cwd=images)
    assert r.returncode == 0, r.stderr
    r = in_venv(base_venv, 'digit_app', '--help', cwd=images)
    assert r.returncode == 0 and '--port' in r.stdout, r.stderr

def test_base_install_training_says_what_to_install(base_venv, tmp_path):
    "Without [train], training ends in one line that says what to install, not an ImportError traceback."
    r = in_venv(base_venv, 'digit_train', '--epochs', '1', '--out', tmp_path/'run', cwd=tmp_path)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == ["digit_train: training needs TensorFlow: pip install 'digit_nbdev[train]'"], r.stderr
    r = in_venv(base_venv, 'python', '-c', "from digit_nbdev.training import train\n"
                "from digit_nbdev import DigitError\n"
                "try: train(epochs=1, out_dir='run')\n"
                "except DigitError as e: print(e)", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "training needs TensorFlow: pip install 'digit_nbdev[train]'", r.stdout + r.stderr
