"""A one-shot migration: waits until the database answers, then 'applies' migrations."""
import os
import socket
import time

port = int(os.environ.get("DB_PORT", "54329"))
deadline = time.monotonic() + 10
while True:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            assert c.recv(5) == b"PONG\n"
            break
    except OSError:
        if time.monotonic() > deadline:
            raise SystemExit("migrate: database never answered")
        time.sleep(0.1)
for step in ("001_users", "002_orders"):
    print(f"migrate: applying {step}")
print("migrate: done")
