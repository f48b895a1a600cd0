"""Writes src/frontend/resp/redis_commands.txt from a real redis-server's
COMMAND reply: every command and subcommand with its arity (redis's
convention: positive exact, negative a minimum, the name counted). Keyway
checks the commands it forwards against it where redis checks before
running (a command queued in MULTI), so that the error is redis's own.

    redis-server --port 6399 --save '' &
    python3 tests/tools/redis_commands.py 6399 > src/frontend/resp/redis_commands.txt
"""

import sys

from acl_categories import command


def main():
    port = int(sys.argv[1])
    reply, info = command(port)
    version = next(line for line in info.split(b"\r\n") if line.startswith(b"redis_version:"))
    print(f"# Arity of every command, from redis-server {version.decode().split(':')[1]}'s COMMAND")
    print("# (tests/tools/redis_commands.py). One line each: name, arity.")
    lines = []
    for entry in reply:
        name, arity, subcommands = entry[0], entry[1], entry[9] if len(entry) > 9 else []
        lines.append((name.decode().lower(), arity))
        for sub in subcommands:
            lines.append((sub[0].decode().lower(), sub[1]))
    for name, arity in sorted(lines):
        print(name, arity)


if __name__ == "__main__":
    main()
