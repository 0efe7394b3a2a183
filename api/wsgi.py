"""WSGI entry for gunicorn: `gunicorn -w 4 'api.wsgi:app'` (scheduler per FLOWGATE_SCHEDULER)."""

from api.app import create_app
from api.bootstrap import bootstrap
from api.settings import Settings

_settings = Settings.from_env()
_container = bootstrap(_settings)
if _settings.scheduler:
    _container.start_scheduler()
app = create_app(container=_container)
