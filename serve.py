"""WSGI entry point: ``gunicorn -c container/gunicorn.conf.py serve:app`` (what container/serve runs).

The model is loaded once here, at import; gunicorn's ``preload_app`` imports this module in the master,
so the workers share the booster copy-on-write. A missing or corrupt artifact still yields an app: its
/ping answers 503 with the reason, as SageMaker expects.
"""

import gc

from scl_delay.server import create_app, load_or_error
from scl_delay.settings import ServeSettings

settings = ServeSettings.from_env()
app = create_app(load_or_error(settings.model_dir), settings)
# Everything loaded so far lives as long as the process: out of the collector's sight, a full collection
# in a worker no longer walks it (measured: one 50-60 ms pause per worker every few seconds with the
# prediction cache filling, none with this), nor writes to the master's pages it shares copy-on-write.
gc.freeze()
