"""Sphinx configuration for the lightning_gan documentation."""

from __future__ import annotations

import lightning_gan

project = "lightning_gan"
author = "lightning_gan contributors"
copyright = "lightning_gan contributors"
release = lightning_gan.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: $...$ / $$...$$ math and heading anchors for cross-page links.
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# Google-style docstrings only.
napoleon_google_docstring = True
napoleon_numpy_docstring = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = False  # skip Lightning's docstrings on overridden hooks

nitpicky = False

html_theme = "alabaster"
html_title = f"lightning_gan {release}"
