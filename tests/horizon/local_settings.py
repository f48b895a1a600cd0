# Copied by tests/horizon into the test venv's openstack_dashboard/local/:
# each Horizon process runs the settings file KEYWAY_HORIZON_SETTINGS names
# (its CACHES, Keystone URL and session engine), after Horizon's defaults,
# exactly where an operator's local_settings.py runs.
import os

with open(os.environ["KEYWAY_HORIZON_SETTINGS"], encoding="utf-8") as _settings:
    exec(_settings.read())
