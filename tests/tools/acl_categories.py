"""Writes src/config/acl_categories.txt from a real redis-server's
COMMAND reply: every command and subcommand with its ACL categories, as
that redis files them. Keyway's per-user permissions read the file, so
`+@read`, `-@dangerous` mean what they mean on that redis.

    redis-server --port 6399 --save '' &
    python3 tests/tools/acl_categories.py 6399 > src/config/acl_categories.txt
"""

import socket
import sys


def command(port):
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"*1\r\n$7\r\nCOMMAND\r\n*1\r\n$4\r\nINFO\r\n")
        reader = conn.makefile("rb")
        reply = parse(reader)
        info = parse(reader)
    return reply, info


def parse(reader):
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"*":
        return [parse(reader) for _ in range(int(rest))]
    if kind == b"$":
        data = reader.read(int(rest) + 2)[:-2]
        return data
    if kind == b":":
        return int(rest)
    return rest


def main():
    port = int(sys.argv[1])
    reply, info = command(port)
    version = next(line for line in info.split(b"\r\n") if line.startswith(b"redis_version:"))
    print(f"# ACL categories of every command, from redis-server {version.decode().split(':')[1]}'s COMMAND")
    print("# (tests/tools/acl_categories.py). One line each: name, then categories.")
    lines = []
    for entry in reply:
        name, categories, subcommands = entry[0], entry[6], entry[9] if len(entry) > 9 else []
        lines.append((name.decode().lower(), [c.decode() for c in categories]))
        for sub in subcommands:
            lines.append((sub[0].decode().lower(), [c.decode() for c in sub[6]]))
    for name, categories in sorted(lines):
        print(name, " ".join(categories))


if __name__ == "__main__":
    main()
