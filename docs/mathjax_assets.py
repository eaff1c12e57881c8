"""MathJax served from the site itself, so the docs' maths renders offline (no CDN).

A mkdocs hook (``hooks:`` in ``mkdocs.yml``). MathJax is third-party output, so it is not in git:
the first build fetches the one pinned release from the npm registry with ``npm pack`` (one
tarball, checked against the pinned sha512; npm's own cache and registry settings apply), keeps
the files the site needs in ``.cache/docs/mathjax-<version>/`` (git-ignored; ``$BIOFA_DOCS_CACHE``
instead of ``.cache/docs`` when set) and every build adds
them to the site under ``assets/mathjax/``. Without npm the build stops with one line saying what
to install.

Why npm and not a CDN fallback or a Python package: npm is MathJax's own distribution channel
(the release its authors publish, pinned by version and hash), ``npm pack`` needs no
``node_modules`` or ``package.json``, and no package on PyPI ships a current MathJax 3 for static
sites. Why MathJax and not KaTeX: the docstrings use TeX that MathJax renders as written
(``\\operatorname``, ``\\bigl``, ``\\lVert``...), and the site already had its configuration
(``docs/javascripts/mathjax.js``).

The notebook pages (mkdocs-jupyter, through nbconvert's template) would load MathJax 2 from a CDN:
:func:`on_post_page` removes that block, so they use the site's MathJax like every page.

Files kept: the combined component ``tex-mml-chtml.js``, its CommonHTML fonts (woff-v2), the TeX
extensions it autoloads (``\\require``, ``\\boldsymbol``, ...), and the menu's accessibility
components (``ui/``, ``a11y/``, ``sre/``), which MathJax loads from beside the script when asked.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.2.2"
PACKAGE = f"mathjax@{VERSION}"
INTEGRITY = (  # npm's "integrity" of the tarball
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("BIOFA_DOCS_CACHE") or ROOT / ".cache" / "docs") / f"mathjax-{VERSION}"
SITE_PATH = "assets/mathjax"  # where the files are in the built site
SCRIPT = f"{SITE_PATH}/tex-mml-chtml.js"  # what mkdocs.yml's extra_javascript loads
KEEP = (
    "tex-mml-chtml.js",
    "input/tex/extensions/",
    "output/chtml/fonts/woff-v2/",
    "ui/",
    "a11y/",
    "sre/",
)
INSTALL_HINT = (
    f"the docs bundle MathJax {VERSION} from the npm registry and npm was not found: install "
    f"Node.js with npm (e.g. `apt-get install npm`), or unpack {PACKAGE}'s es5/ folder into "
    f"{CACHE / SITE_PATH}"
)


class MathJaxUnavailable(RuntimeError):
    """MathJax is not in the cache and could not be fetched (the message says why, on one line)."""


def ensure(cache: Path = CACHE) -> Path:
    """The folder holding ``assets/mathjax/...`` (fetched into ``cache`` on first use)."""
    if (cache / SCRIPT).is_file():
        return cache
    npm = shutil.which("npm")
    if npm is None:
        raise MathJaxUnavailable(INSTALL_HINT)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent, prefix=".mathjax-") as tmp:
        tmp = Path(tmp)
        result = subprocess.run(
            [npm, "pack", PACKAGE, "--pack-destination", str(tmp), "--silent"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        tarballs = list(tmp.glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            last = (result.stderr.strip().splitlines() or ["no tarball written"])[-1]
            raise MathJaxUnavailable(f"`npm pack {PACKAGE}` failed: {last}")
        _check_integrity(tarballs[0])
        unpacked = tmp / "unpacked"
        _extract(tarballs[0], unpacked / SITE_PATH)
        try:
            os.replace(unpacked, cache)
        except OSError:  # another build got there first
            if not (cache / SCRIPT).is_file():
                raise
    return cache


def _check_integrity(tarball: Path) -> None:
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        raise MathJaxUnavailable(
            f"{tarball.name}: {algorithm} {digest} is not the pinned {INTEGRITY}"
        )


def _extract(tarball: Path, dest: Path) -> None:
    """The files of ``KEEP`` from the package's ``es5/`` folder, as plain files under ``dest``."""
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("package/es5/")
            if name == member.name or not member.isfile() or ".." in Path(name).parts:
                continue
            if not any(name == keep or name.startswith(keep) for keep in KEEP):
                continue
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())


def files_of(cache: Path) -> list[str]:
    """Site paths (``assets/mathjax/...``) of the cached files."""
    return sorted(
        p.relative_to(cache).as_posix() for p in (cache / SITE_PATH).rglob("*") if p.is_file()
    )


# ---------------------------------------------------------------------------------- mkdocs hooks
def on_config(config, **kwargs):
    from mkdocs.exceptions import PluginError

    try:
        ensure()
    except MathJaxUnavailable as error:
        raise PluginError(str(error)) from None
    if SCRIPT not in [str(s) for s in config["extra_javascript"]]:
        raise PluginError(
            f"mkdocs.yml: extra_javascript must load {SCRIPT} (docs/mathjax_assets.py)"
        )
    return config


# nbconvert's template (used by mkdocs-jupyter for the notebook pages) loads MathJax 2 from a CDN
# between these comments; the site's own MathJax 3 is on every page, notebooks included.
NOTEBOOK_MATHJAX = re.compile(
    r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S
)


def on_post_page(output, page, config, **kwargs):
    return NOTEBOOK_MATHJAX.sub("", output)


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for path in files_of(CACHE):
        files.append(File(path, str(CACHE), config["site_dir"], config["use_directory_urls"]))
    return files
