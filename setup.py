"Packaging for digit_nbdev: metadata comes from settings.ini (nbdev 2 layout)."
from configparser import ConfigParser
import setuptools, shlex

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

# (No url or author_email: the project has no public home or mailbox yet, and placeholders would mislead.)
cfg_keys = 'version description keywords author'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o:cfg[o] for o in cfg_keys}

# An SPDX license expression (PEP 639), not a 'License ::' classifier (deprecated by setuptools >= 77, which
# pyproject.toml asks for); an older setuptools (a --no-build-isolation build in a venv) writes it as `License:`.
licenses = {'apache2': 'Apache-2.0'}
license_key = 'license_expression' if int(setuptools.__version__.split('.')[0]) >= 77 else 'license'
statuses = [ '1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive' ]
py_versions = '3.10 3.11 3.12'.split()

requirements = shlex.split(cfg.get('requirements', ''))  # the base install: inference, CLI, dashboard (no TensorFlow)
train_requirements = shlex.split(cfg.get('train_requirements', ''))  # [train]: TensorFlow/Keras
dask_requirements = shlex.split(cfg.get('dask_requirements', ''))  # [dask]: digit_predict --workers/--scheduler, fsspec URLs
dev_requirements = train_requirements + dask_requirements + shlex.split(cfg.get('dev_requirements', ''))  # [dev]: train + dask + notebooks and tests
lic = licenses.get(cfg['license'].lower(), cfg['license'])
min_python = cfg['min_python']

setuptools.setup(
    name = cfg['lib_name'],
    classifiers = [
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: '+o for o in py_versions[py_versions.index(min_python):]],
    # models/ and app/ hold data only; they are declared as (namespace) packages so that setuptools ships them.
    packages = setuptools.find_namespace_packages(include=['digit_nbdev', 'digit_nbdev.*'], exclude=['*.__pycache__']),
    # The wheel ships what inference reads: the LiteRT models, their cards and the served dashboard notebook.
    # The Keras model (digit_cnn.keras) and its training history stay in the sdist (MANIFEST.in) only.
    include_package_data = False,
    package_data = {'digit_nbdev.models': ['*.tflite', '*.json', '*.md'], 'digit_nbdev.app': ['*.ipynb']},
    install_requires = requirements,
    extras_require = {'train': train_requirements, 'dask': dask_requirements, 'dev': dev_requirements},
    dependency_links = cfg.get('dep_links','').split(),
    python_requires  = '>=' + cfg['min_python'],
    long_description = open('README.md', encoding='utf-8').read(),
    long_description_content_type = 'text/markdown',
    zip_safe = False,
    entry_points = {
        'console_scripts': cfg.get('console_scripts','').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']
    },
    **{license_key: lic}, **setup_cfg)
