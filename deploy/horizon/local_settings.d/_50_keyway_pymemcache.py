# Horizon local_settings.d snippet: Keyway as the sidecar cache and session
# store, through pymemcache (Horizon's default memcached client).
# Copy ONE of these snippets into openstack_dashboard/local/local_settings.d/
# (or /etc/openstack-dashboard/local_settings.d/) and restart Horizon.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": "127.0.0.1:11211",
    },
}
# Sessions in the cache; Keyway's routes decide where they really live
# (with the embedded default: a SQLite file that survives restarts).
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
