# Horizon local_settings.d snippet: Keyway through pylibmc (libmemcached).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.memcached.PyLibMCCache",
        "LOCATION": "127.0.0.1:11211",
    },
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
