"""A stand-in database: accepts TCP connections on $DB_PORT and answers PONG."""
import os
import signal
import socket
import sys

port = int(os.environ.get("DB_PORT", "54329"))
signal.signal(signal.SIGINT, lambda *_: (print("db: shutting down cleanly"), sys.exit(0)))
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen()
print(f"db: accepting connections on 127.0.0.1:{port}")
while True:
    conn, _ = srv.accept()
    conn.sendall(b"PONG\n")
    conn.close()
