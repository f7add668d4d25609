"""Schemathesis hooks for tools/fuzz_api.py: sign every generated call as a client would (docs/api.md
section 2), with a fresh timestamp each time, so a signed POST is never refused as a replay.

The credentials come from the environment tools/fuzz_api.py sets (FUZZ_* variables, never logged).
`logout` is signed as a user of its own: it ends the token it is signed with, which would leave every
later call of the run unsigned."""
import hashlib
import os
import threading
import time

import schemathesis

_lock = threading.Lock()
_last_timestamp = [0]


def fresh_timestamp() -> str:
    """Milliseconds, never the same twice in this process (workers sign concurrently)."""
    with _lock:
        _last_timestamp[0] = max(_last_timestamp[0] + 1, int(time.time() * 1000))
        return str(_last_timestamp[0])


def sign(user_id: str, token: str) -> dict[str, str]:
    timestamp = fresh_timestamp()
    return {"rand_str": hashlib.md5(f"{timestamp}{token}".encode()).hexdigest(), "timestamp": timestamp,
            "user_id": user_id}


@schemathesis.auth(refresh_interval=None)
class Signing:
    def get(self, case, context):
        if case.path.rstrip("/").endswith("/logout"):
            return os.environ["FUZZ_LOGOUT_USER_ID"], os.environ["FUZZ_LOGOUT_TOKEN"]
        return os.environ["FUZZ_USER_ID"], os.environ["FUZZ_TOKEN"]

    def set(self, case, data, context):
        case.query = {**(case.query or {}), **sign(*data)}
