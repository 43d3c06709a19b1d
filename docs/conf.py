"""
Sphinx configuration of the sunpy_timelag documentation.

Build it, warnings as errors, with::

    python -m pip install ".[docs]" && sphinx-build -W -b html docs docs/_build/html

The build runs offline: the gallery uses synthetic data and data files shipped with the
dependencies, and links to the documentation of other projects (intersphinx) are made only
when ``SUNPY_TIMELAG_DOCS_ONLINE=1`` is set, because fetching their inventories needs the
network and a failed fetch is a warning.
"""
import os
import shutil
import warnings
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")

from sunpy_timelag import __version__  # noqa: E402

# -- Project -----------------------------------------------------------------------------------

project = "sunpy_timelag"
author = "The sunpy_timelag developers"
copyright = f"{datetime.now(UTC).year}, {author}"  # noqa: A001
release = __version__
is_development = ".dev" in release
version = release.split("+")[0]

# -- General -----------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx.ext.viewcode",
    "sphinx_automodapi.automodapi",
    "sphinx_automodapi.smart_resolver",
    "sphinx_changelog",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "generated/gallery/*.ipynb", "sg_execution_times.rst"]
default_role = "obj"
# Unresolvable cross-references (e.g. to other projects when intersphinx is off) are plain text,
# not warnings: the build must pass offline with -W.
nitpicky = False
suppress_warnings = []

# -- API reference: automodapi + numpydoc -------------------------------------------------------

automodapi_toctreedirnm = "api"
# automodapi writes a page per public name and never removes one: start from a clean folder so
# that a name no longer public leaves no orphan page (an orphan is a warning).
shutil.rmtree(os.path.join(os.path.dirname(os.path.abspath(__file__)), automodapi_toctreedirnm), ignore_errors=True)
automodapi_inheritance_diagram = False  # needs graphviz
automodsumm_inherited_members = False
autoclass_content = "both"
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

# -- Intersphinx (only with the network) --------------------------------------------------------

_mapping = {
    "python": ("https://docs.python.org/3/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "astropy": ("https://docs.astropy.org/en/stable/", None),
    "sunpy": ("https://docs.sunpy.org/en/stable/", None),
    "ndcube": ("https://docs.sunpy.org/projects/ndcube/en/stable/", None),
    "dask": ("https://docs.dask.org/en/stable/", None),
    "distributed": ("https://distributed.dask.org/en/stable/", None),
    "gwcs": ("https://gwcs.readthedocs.io/en/stable/", None),
    "aiapy": ("https://aiapy.readthedocs.io/en/stable/", None),
    "dkist": ("https://docs.dkist.nso.edu/projects/python-tools/en/stable/", None),
    "sunkit_image": ("https://docs.sunpy.org/projects/sunkit-image/en/stable/", None),
    "cupy": ("https://docs.cupy.dev/en/stable/", None),
    "fsspec": ("https://filesystem-spec.readthedocs.io/en/latest/", None),
}
ONLINE = os.environ.get("SUNPY_TIMELAG_DOCS_ONLINE", "").lower() in ("1", "true", "yes")
intersphinx_mapping = _mapping if ONLINE else {}
intersphinx_timeout = 10

# -- HTML --------------------------------------------------------------------------------------

try:
    import sunpy_sphinx_theme  # noqa: F401

    html_theme = "sunpy"
    html_theme_options = {
        "sst_project_name": "sunpy_timelag",
        "sst_is_root": False,
        "navbar_links": [
            ["Guide", "guide/index", 0],
            ["Gallery", "generated/gallery/index", 0],
            ["API", "reference/index", 0],
            ["Performance", "performance", 0],
            ["Changelog", "changelog", 0],
        ],
        "rtd_search": False,
        "footer_center": [],
    }
except ImportError:  # the pydata theme, which sunpy's builds on
    html_theme = "pydata_sphinx_theme"
    html_theme_options = {}
html_title = f"sunpy_timelag {version}"
html_static_path = []
html_last_updated_fmt = None

# -- Gallery -----------------------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": os.path.join("..", "examples"),
    "gallery_dirs": os.path.join("generated", "gallery"),
    # execute every example, on every build (SUNPY_TIMELAG_GALLERY_PATTERN: only those matching it)
    "filename_pattern": os.environ.get("SUNPY_TIMELAG_GALLERY_PATTERN", r"\.py$"),
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "default_thumb_file": None,
    "doc_module": ("sunpy_timelag",),
    "reference_url": {"sunpy_timelag": None},
    "backreferences_dir": os.path.join("generated", "modules"),
    "show_memory": False,
    "capture_repr": ("_repr_html_", "__repr__"),
    "image_scrapers": ("matplotlib",),
    "plot_gallery": "True",
}

# A few third-party deprecation notices are not ours to fix and must not fail -W through the
# gallery's captured output.
warnings.filterwarnings("ignore", category=DeprecationWarning, module="distributed")
warnings.filterwarnings("ignore", message=".*Matplotlib is currently using agg.*")


# -- The released changelog, once there is one ---------------------------------------------------

_CHANGELOG_FILE = os.path.join(os.path.dirname(__file__), "..", "CHANGELOG.rst")


def _add_released_changelog(app, docname, source):
    """Render ``CHANGELOG.rst`` (written by towncrier at release time) below the unreleased changes."""
    if docname == "changelog" and os.path.exists(_CHANGELOG_FILE):
        source[0] = source[0].replace(":towncrier-skip-if-empty:",
                                      ":towncrier-skip-if-empty:\n   :changelog_file: ../CHANGELOG.rst")


def setup(app):
    app.connect("source-read", _add_released_changelog)
