"""Render nbs/index.ipynb to README.md (Quarto, which nbdev_readme needs, cannot be installed here).

Hidden cells (`#| hide`) are left out, `#|` directives are dropped, and image links are made relative to the
repository root. `python tools/readme.py --check` fails when README.md is not what index.ipynb renders to."""
import re, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]

def render() -> str:
    nb = nbformat.read(ROOT/'nbs'/'index.ipynb', as_version=4)
    cells = []
    for c in nb.cells:
        lines = c.source.splitlines()
        if any(l.strip() in ('#| hide', '#|hide') for l in lines[:3]): continue
        c.source = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        if c.source: cells.append(c)
    nb.cells = cells
    body, _ = MarkdownExporter(exclude_output=True).from_notebook_node(nb)
    body = re.sub(r'\]\((images/[^)]+)\)', r'](nbs/\1)', body)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    return '<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n' + body

if __name__ == '__main__':
    text, readme = render(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python tools/readme.py` and commit it.")
        print("README.md matches nbs/index.ipynb")
    else:
        readme.write_text(text); print(f"wrote {readme}")
