"""Sphinx configuration of the newtoncnn documentation.

Build (offline: nothing is fetched at build time, MathJax is served from the
build's own ``_static``)::

    pip install ".[docs]"
    sphinx-build -W --keep-going -n -b html docs docs/_build/html
    sphinx-build -W --keep-going -n -b doctest docs docs/_build/doctest
"""
import importlib
import inspect
import os
import sys

import newtoncnn

project = "newtoncnn"
author = "the newtoncnn developers"
copyright = "the newtoncnn developers"
release = newtoncnn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_design",
    # MathJax 3 from PyPI, copied into the build's _static: the pages render
    # their equations with no network (the theme's default loads it from a CDN).
    "sphinx-mathjax-offline",
]

templates_path = ["_templates"]
exclude_patterns = ["_build"]
html_theme = "pydata_sphinx_theme"
html_title = f"newtoncnn {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    # the benchmarks' tables get the page's whole width
    "secondary_sidebar_items": {"**": ["page-toc"], "benchmarks": []},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# pages without sub-pages: no empty navigation column
html_sidebars = {"**": ["sidebar-nav-bs"], "index": [], "getting_started": [], "benchmarks": [],
                 "development": []}
html_static_path = []

# -- autodoc / autosummary / numpydoc -------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# No public function or class without a docstring, no parameter undocumented or
# documented under a wrong name: these are build errors (-W).
numpydoc_validation_checks = {"GL08", "PR01", "PR02"}
numpydoc_validation_exclude = {
    r"\.__init__$",          # documented in the class docstring
    r"\._[a-z]\w*$",         # private methods
    r"\.Status$",            # an enum: its "parameters" are enum.IntEnum's machinery
}

# -- nitpicky (-n) --------------------------------------------------------------------------
# No intersphinx (the build is offline): references to other projects' names stay plain.
nitpick_ignore_regex = [
    ("py:.*", r"(numpy|np|scipy|sklearn|threadpoolctl|os|pathlib|argparse|enum|typing)\..*"),
    ("py:.*", r"(ndarray|array_like|LinearOperator|OptimizeResult|Generator)"),
    ("py:.*", r"newtoncnn\._\w+\..*"),      # private base classes shown by show-inheritance
]

# -- doctest ---------------------------------------------------------------------------------
doctest_global_setup = """
import numpy as np
import newtoncnn
newtoncnn.set_num_threads(1)
"""
doctest_default_flags = (__import__("doctest").ELLIPSIS
                         | __import__("doctest").NORMALIZE_WHITESPACE
                         | __import__("doctest").DONT_ACCEPT_TRUE_FOR_1)

# -- every public name is in the API reference ------------------------------------------------
_HERE = os.path.dirname(os.path.abspath(__file__))


def _public_modules():
    pkg_dir = os.path.dirname(newtoncnn.__file__)
    names = sorted(f[:-3] for f in os.listdir(pkg_dir)
                   if f.endswith(".py") and not f.startswith("_"))
    return ["newtoncnn"] + [f"newtoncnn.{n}" for n in names]


def _documented_names():
    """Full names listed in the autosummary tables of docs/api/*.rst."""
    found = set()
    for fname in sorted(os.listdir(os.path.join(_HERE, "api"))):
        if not fname.endswith(".rst"):
            continue
        module = None
        in_table = False
        with open(os.path.join(_HERE, "api", fname), encoding="utf-8") as f:
            for line in f:
                stripped = line.strip()
                if stripped.startswith(".. currentmodule::"):
                    module = stripped.split("::")[1].strip()
                elif stripped.startswith(".. autosummary::"):
                    in_table = True
                elif in_table and stripped and not stripped.startswith(":"):
                    if not line.startswith("   "):
                        in_table = False
                        continue
                    name = stripped if "." in stripped and stripped.startswith("newtoncnn") \
                        else f"{module}.{stripped}"
                    found.add(name)
    return found


def _resolve(full):
    mod, _, attr = full.rpartition(".")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError):
        mod2, _, cls = mod.rpartition(".")
        return getattr(getattr(importlib.import_module(mod2), cls), attr)


def check_api_complete(app):
    """Warn (an error under -W) about a public name that the API reference leaves out."""
    from sphinx.util import logging
    log = logging.getLogger("newtoncnn.api")
    documented = _documented_names()
    objects = {}
    for full in documented:
        try:
            objects[full] = _resolve(full)
        except (ImportError, AttributeError):
            log.warning(f"API reference lists {full}, which does not exist")
    ids = {id(o) for o in objects.values()}
    for modname in _public_modules():
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", []):
            if name == "__version__":
                continue
            obj = getattr(module, name)
            if not getattr(obj, "__module__", "newtoncnn").startswith("newtoncnn"):
                continue  # re-exported from another library (scikit-learn's exceptions)
            if f"{modname}.{name}" in documented or id(obj) in ids:
                continue
            if inspect.ismodule(obj):
                continue
            log.warning(f"public name {modname}.{name} is missing from docs/api/*.rst")


def skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out members a class inherits from other libraries (scikit-learn's metadata
    routing ``set_*_request`` methods): their docstrings are documented upstream."""
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and module and not module.startswith("newtoncnn"):
        return True
    if what == "class" and name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("builder-inited", check_api_complete)
    app.connect("autodoc-skip-member", skip_foreign_members)
