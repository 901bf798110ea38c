"""A worker that crashes on its first two runs (pk restarts it with backoff), then keeps going."""
import os
import tempfile
import time

# pk is the parent across restarts, so this counter is per pk run.
counter = os.path.join(tempfile.gettempdir(), f"pk-example-worker.{os.getppid()}")
try:
    attempt = int(open(counter).read()) + 1
except (OSError, ValueError):
    attempt = 1
with open(counter, "w") as f:
    f.write(str(attempt))
print(f"worker: attempt {attempt}")
if attempt <= 2:
    time.sleep(0.5)
    raise SystemExit(f"worker: lost connection to the queue (attempt {attempt})")
os.unlink(counter)
while True:
    print("worker: processed a job")
    time.sleep(2)
