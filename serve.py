"""WSGI entry point: ``gunicorn -c container/gunicorn.conf.py serve:app`` (what container/serve runs).

The model is loaded once here, at import; gunicorn's ``preload_app`` imports this module in the master,
so the workers share the booster copy-on-write. A missing or corrupt artifact still yields an app: its
/ping answers 503 with the reason, as SageMaker expects.
"""

from scl_delay.server import create_app, load_or_error
from scl_delay.settings import ServeSettings

settings = ServeSettings.from_env()
app = create_app(load_or_error(settings.model_dir), settings)
