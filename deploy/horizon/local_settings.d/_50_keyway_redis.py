# Horizon local_settings.d snippet: Keyway through Django's own RedisCache
# (redis-py; it negotiates RESP3 with Keyway).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379",
    },
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
