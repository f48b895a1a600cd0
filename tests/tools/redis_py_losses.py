"""Writes tests/redis_py/lost_on_memory.txt from a run of tests/redis_py/run.sh
with KEEP_LOGS=DIR: every redis-py test that passes on redis-server and not
through Keyway's memory route, with the reason, read from the failure.

    python3 tests/tools/redis_py_losses.py DIR > tests/redis_py/lost_on_memory.txt

A failure no rule explains is printed to stderr: explain it (or fix it)."""

import re
import sys

# (pattern in the failure message, reason), first match wins.
RULES = [
    (r"'(X[A-Z]+)' works only", "streams are not on the memory store (hashes, lists, sets and sorted sets are): route stream keys to a redis backend"),
    (r"'(GEO[A-Z]+)' works only", "geo commands are not on the memory store: route geo keys to a redis backend"),
    (r"'(PF[A-Z]+)' works only", "HyperLogLog is not on the memory store: route these keys to a redis backend"),
    (r"'(BITFIELD|BITFIELD_RO)' works only", "BITFIELD is not on the memory store (GETBIT, SETBIT, BITCOUNT, BITPOS and BITOP are): route these keys to a redis backend"),
    (r"'(SORT|SORT_RO)' (works only|names no key)", "SORT is not on the memory store: route these keys to a redis backend"),
    (r"'(DUMP|RESTORE)' works only", "DUMP/RESTORE (redis's RDB serialization) are not on the memory store"),
    (r"'LCS' works only", "LCS is not on the memory store"),
    (r"'(P?EXPIRETIME)' works only", "EXPIRETIME/PEXPIRETIME are not built"),
    (r"Keyway runs only the Lua scripts|'EVAL(_RO|SHA_RO)?' (works only|names no key)", "Lua: the memory store runs django-redis's and redis-py's lock scripts natively and has no Lua interpreter for others"),
    (r"needs a redis connection of its own", "WATCH and blocking pops are not built on the memory route (they work on redis routes)"),
    (r"its users and their permissions are \[\[auth.users\]\]", "ACL: Keyway's users are [[auth.users]] in its configuration file, refused on purpose"),
    (r"Try CLIENT HELP|CLIENT", "CLIENT TRACKING is built where every route goes to one redis (redis tells the client when a key changes); on the memory store it is not built"),
    (r"CONFIG SET is not supported", "CONFIG SET: Keyway's settings are its configuration file (reload with SIGHUP), refused on purpose"),
    (r"administers the redis server", "administers a redis server (BGSAVE, MODULE, REPLICAOF...): there is none on a memory route"),
    (r"'(LATENCY|LOLWUT|RANDOMKEY|FUNCTION|FCALL)' names no key", "keyless redis commands are forwarded to a sole redis; the memory store has no LATENCY, LOLWUT or FUNCTION"),
    (r"slowlog|SLOWLOG", "SLOWLOG and its CONFIG parameters are redis's; not on the memory route"),
    (r"Try COMMAND HELP|assert \d+ (>=|>) (100|300)", "COMMAND on a memory route lists Keyway's own commands (no GETKEYS)"),
    (r"Try MEMORY HELP", "MEMORY STATS/MALLOC-STATS are redis's allocator figures; Keyway answers MEMORY USAGE only"),
    (r"listpack|hash-max", "CONFIG GET on a memory route answers Keyway's own parameters, not redis's encoding settings"),
    (r"RedisClusterException", "redis-py's cluster-only check, reached through INFO's cluster_enabled on a non-redis route"),
]


def main(directory):
    server = set(open(f"{directory}/server.txt").read().split())
    memory = set(open(f"{directory}/memory.txt").read().split())
    failures = {}
    for line in open(f"{directory}/memory.txt.log", errors="replace"):
        match = re.match(r"^(FAILED|ERROR) (\S+)(?: - (.*))?", line)
        if match:
            failures.setdefault(match.group(2), match.group(3) or "")
    unexplained = []
    print("# redis-py tests that pass against redis-server 7.0 and not through Keyway's")
    print("# memory route (every route to its memory store), with the reason;")
    print("# tests/redis_py/run.sh fails on any other, and says when one of these passes.")
    print("# Written by tests/tools/redis_py_losses.py.")
    for test in sorted(server - memory):
        message = failures.get(test, "")
        reason = next((r for p, r in RULES if re.search(p, message)), None)
        if reason is None:
            unexplained.append(f"{test}: {message[:200]}")
            reason = "not explained yet: " + message[:120].replace("#", "")
        print(f"{test}  # {reason}")
    for line in unexplained:
        print(line, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
