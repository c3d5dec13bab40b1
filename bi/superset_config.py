"""Superset's configuration for `make bi` (read through SUPERSET_CONFIG_PATH; `bi/start.py` sets BI_HOME).

Everything Superset writes -- its metadata database, the secret key -- lives under BI_HOME (`DATA_DIR/bi`), so a
`DATA_DIR` has its own Superset and nothing leaves the machine: no example data, no usage statistics, no map tiles.
"""

import os
from pathlib import Path

BI_HOME = Path(os.environ["BI_HOME"])

# Generated once by bi/start.py (signs sessions and encrypts the connection passwords in the metadata database).
SECRET_KEY = (BI_HOME / "secret_key").read_text().strip()
SQLALCHEMY_DATABASE_URI = f"sqlite:///{BI_HOME / 'superset.db'}?check_same_thread=false"
SQLALCHEMY_EXAMPLES_URI = SQLALCHEMY_DATABASE_URI  # never loaded: `make bi` skips `superset load-examples`

# No query caches: every chart query reads the published copy as it is now, so a new publication shows at once.
CACHE_CONFIG = DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
FILTER_STATE_CACHE_CONFIG = EXPLORE_FORM_DATA_CACHE_CONFIG = {
    "CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 86400, "CACHE_THRESHOLD": 500}

# Offline: no map tiles (no Mapbox key), no avatars or thumbnails fetched by a headless browser.
MAPBOX_API_KEY = ""
FEATURE_FLAGS = {"THUMBNAILS": False, "SLACK_ENABLE_AVATARS": False, "DASHBOARD_NATIVE_FILTERS": True}
SUPERSET_WEBSERVER_TIMEOUT = 120
ROW_LIMIT = 50000
