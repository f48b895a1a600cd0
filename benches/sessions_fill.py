"""Fills Keyway (RESP on the given port) with Django cache-engine sessions
shaped like Horizon's: a pickled dict with _auth_user_id and token-like
objects (about 2 KiB), USERS users with SESSIONS/USERS sessions each, over 8 connections.

    python benches/sessions_fill.py PORT SESSIONS USERS
"""

import datetime
import multiprocessing
import pickle
import secrets
import sys

import redis


class Token:
    def __init__(self, user):
        self.id = "gAAAAAB" + secrets.token_urlsafe(135)
        self.user = {"id": user, "name": user, "domain": {"id": "default"}}
        self.project = {"id": "p1", "name": "admin"}
        self.expires = datetime.datetime(2026, 12, 6, 18, 0, tzinfo=datetime.timezone.utc)
        self.roles = [{"name": "admin"}, {"name": "member"}]
        self.serviceCatalog = [
            {"type": t, "endpoints": [{"interface": i, "url": f"http://127.0.0.1/{t}/{i}"} for i in ("public", "internal", "admin")]}
            for t in ("identity", "compute", "image", "network", "volumev3", "placement", "orchestration", "object-store")
        ]


def session(user):
    token = Token(user)
    return pickle.dumps(
        {
            "_auth_user_id": user,
            "_auth_user_backend": "openstack_auth.backend.KeystoneBackend",
            "_auth_user_hash": secrets.token_hex(32),
            "token": token,
            "unscoped_token": token.id,
            "region_endpoint": "http://127.0.0.1:5000/v3",
            "services_region": "RegionOne",
            "login_time": datetime.datetime.now(),
            "_session_expiry": 3600,
        },
        pickle.HIGHEST_PROTOCOL,
    )


def fill(port, sessions, users, part, parts):
    client = redis.Redis(port=port, protocol=2)
    pipe = client.pipeline(transaction=False)
    for n in range(part, sessions, parts):
        key = ":1:django.contrib.sessions.cache" + secrets.token_hex(16)
        pipe.set(key, session(f"user-{n % users}"), ex=3600)
        if len(pipe) == 500:
            pipe.execute()
    pipe.execute()


def main():
    port, sessions, users = (int(a) for a in sys.argv[1:4])
    parts = 8
    workers = [multiprocessing.Process(target=fill, args=(port, sessions, users, part, parts)) for part in range(parts)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            sys.exit(f"a filler failed: exit {worker.exitcode}")


if __name__ == "__main__":
    main()
