"""Keystone's WSGI application for gunicorn. keystone.server hands sys.argv
to oslo.config, which refuses gunicorn's own flags, so the app is loaded with
argv cleared; the configuration comes from OS_KEYSTONE_CONFIG_DIR."""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
