"""Great Expectations Data Docs that render without the internet.

GX 1.24's page templates load jQuery, Popper, Bootstrap 4, bootstrap-table (which draws the index's table of
validation runs from inline data: offline that table stays empty), bootstrap-datepicker, Font Awesome, Vega and
a dark theme from CDNs, and the logo from GX's S3 bucket (with the data context id in the query). GX has no
setting for these URLs (a site's custom views can add templates, not replace its own), so after every site build
:func:`localise_site` rewrites the pages to copies under ``static/offline/`` in the site:

- jQuery, Bootstrap 4 (its bundle includes Popper) and Font Awesome from their XStatic packages (PyPI);
- bootstrap-table 1.19.1 with its filter-control extension and bootstrap-datepicker 1.9.0, which no PyPI package
  ships, from ``data_docs_assets/`` beside this module (the files of the npm releases GX's URLs name; licences
  beside them);
- the logo from GX's own ``static/images``;
- dropped: Vega / Vega-Lite / Vega-Embed (only chart-drawing expectations use them, and our suites have none)
  and the ``prefers-color-scheme: dark`` theme (pages render light).

A CDN URL this table does not know (a newer GX) is left as it is and logged as a warning.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

OFFLINE_DIR = "offline"  # under the site's static/
VENDORED = Path(__file__).resolve().parent / "data_docs_assets"

# (pattern on the URL's path, file under static/offline/ or None to drop the tag), first match wins.
LOCAL_COPIES: tuple[tuple[str, str | None], ...] = (
    (r"/jquery[-.\d]*(\.min)?\.js$", "jquery/jquery.min.js"),
    (r"/popper(\.min)?\.js$", None),  # in Bootstrap's bundle
    (r"/bootstrap(\.min)?\.js$", "bootstrap/js/bootstrap.bundle.min.js"),
    (r"/bootstrap(\.min)?\.css$", "bootstrap/css/bootstrap.min.css"),
    (r"/bootstrap-table(\.min)?\.js$", "bootstrap-table/bootstrap-table.min.js"),
    (r"/bootstrap-table(\.min)?\.css$", "bootstrap-table/bootstrap-table.min.css"),
    (r"/bootstrap-table-filter-control(\.min)?\.js$", "bootstrap-table/bootstrap-table-filter-control.min.js"),
    (r"/bootstrap-table-filter-control(\.min)?\.css$", "bootstrap-table/bootstrap-table-filter-control.min.css"),
    (r"/bootstrap-datepicker(\.min)?\.js$", "bootstrap-datepicker/bootstrap-datepicker.min.js"),
    (r"/bootstrap-datepicker(\.min)?\.css$", "bootstrap-datepicker/bootstrap-datepicker.min.css"),
    (r"/font-awesome/.*/all(\.min)?\.css$", "font-awesome/css/all.min.css"),
    (r"/vega(-lite|-embed)?@", None),
    (r"/bootstrap-prefers-dark(\.min)?\.css$", None),
)

_EXTERNAL = r"(?:https?:)?//[^\"']+"
_SCRIPT = re.compile(rf"<script\b[^>]*?\bsrc=[\"']({_EXTERNAL})[\"'][^>]*>\s*</script>", re.I)
_STYLESHEET = re.compile(rf"<link\b[^>]*?\bhref=[\"']({_EXTERNAL})[\"'][^>]*>", re.I)
_GX_IMAGE = re.compile(r"https://great-expectations-web-assets\.[^/\"')]+/([\w.-]+)(?:\?[^\"')]*)?")
GX_IMAGES = ("logo-long.png", "short-logo.png")  # in GX's static/images; any other remote image -> the first


def _asset_sources() -> dict[str, Path]:
    """File under static/offline/ -> where it comes from."""
    from xstatic.pkg import bootstrap, font_awesome, jquery

    jq, bs, fa = Path(jquery.BASE_DIR), Path(bootstrap.BASE_DIR), Path(font_awesome.BASE_DIR)
    sources = {
        "jquery/jquery.min.js": jq / "jquery.min.js",
        "bootstrap/js/bootstrap.bundle.min.js": bs / "js" / "bootstrap.bundle.min.js",
        "bootstrap/css/bootstrap.min.css": bs / "css" / "bootstrap.min.css",
        "font-awesome/css/all.min.css": fa / "css" / "all.min.css",
        # all.min.css names woff2 first, which every current browser takes: the .ttf fallbacks are not copied
        **{f"font-awesome/webfonts/{f.name}": f for f in (fa / "webfonts").glob("*.woff2")},
    }
    for name in ("bootstrap-table.min.js", "bootstrap-table.min.css", "bootstrap-table-filter-control.min.js",
                 "bootstrap-table-filter-control.min.css"):
        sources[f"bootstrap-table/{name}"] = VENDORED / name
    for name in ("bootstrap-datepicker.min.js", "bootstrap-datepicker.min.css"):
        sources[f"bootstrap-datepicker/{name}"] = VENDORED / name
    return sources


def install_assets(static_dir: Path) -> Path:
    """Copy the local assets into ``static_dir/offline`` (files already there with the same size are kept)."""
    target = static_dir / OFFLINE_DIR
    for name, source in _asset_sources().items():
        dest = target / name
        if not dest.exists() or dest.stat().st_size != source.stat().st_size:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
    return target


def _local(url: str) -> tuple[bool, str | None]:
    path = url.split("?", 1)[0]
    for pattern, local in LOCAL_COPIES:
        if re.search(pattern, path):
            return True, local
    return False, None


def localise_html(html: str, static_prefix: str) -> tuple[str, set[str]]:
    """``html`` with every known CDN asset pointed at ``static_prefix/offline/...`` (or dropped) and GX's remote
    images at ``static_prefix/images``; also returns the external asset URLs it did not know."""
    unknown: set[str] = set()

    def tag(kind: str):
        def replace(match: re.Match) -> str:
            known, local = _local(match.group(1))
            if not known:
                unknown.add(match.group(1))
                return match.group(0)
            if local is None:
                return ""
            # a fresh tag: the CDN tag's integrity hash is for the CDN's file, not this copy
            src = f"{static_prefix}/{OFFLINE_DIR}/{local}"
            return f'<script src="{src}"></script>' if kind == "script" else f'<link rel="stylesheet" href="{src}">'
        return replace

    html = _SCRIPT.sub(tag("script"), html)
    html = _STYLESHEET.sub(tag("link"), html)
    html = _GX_IMAGE.sub(
        lambda m: f"{static_prefix}/images/{m.group(1) if m.group(1) in GX_IMAGES else GX_IMAGES[0]}", html)
    return html, unknown


def localise_site(site_dir: str | os.PathLike) -> int:
    """Make the Data Docs site in ``site_dir`` render offline (idempotent); returns the pages rewritten."""
    site_dir = Path(site_dir)
    static_dir = site_dir / "static"
    install_assets(static_dir)
    rewritten, unknown = 0, set()
    for page in site_dir.rglob("*.html"):
        if static_dir in page.parents:
            continue
        html = page.read_text(encoding="utf-8")
        prefix = Path(os.path.relpath(static_dir, page.parent)).as_posix()
        new, missed = localise_html(html, prefix)
        unknown |= missed
        if new != html:
            tmp = page.with_name(f".{page.name}.offline.tmp")
            tmp.write_text(new, encoding="utf-8")
            os.replace(tmp, page)  # a reader never sees a half-written page
            rewritten += 1
    if unknown:
        log.warning("Data Docs pages still load from the internet (no local copy known): %s", sorted(unknown))
    log.debug("localised %d Data Docs pages in %s", rewritten, site_dir)
    return rewritten
