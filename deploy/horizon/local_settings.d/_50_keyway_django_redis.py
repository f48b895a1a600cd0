# Horizon local_settings.d snippet: Keyway through django-redis
# (pip install django-redis). The /0 suffix is Keyway's database 0.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
    },
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
