"""Benchmark: the signature check's user lookup, compiled once (auth.authenticate) beside the same query
built through Peewee on every call, in one run on a temporary SQLite database.

    .venv/bin/python bench/signing.py [--calls N]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import config  # noqa: E402
import models  # noqa: E402
from services import auth  # noqa: E402


def per_call_us(fn, calls):
    for _ in range(200):  # warm up
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    calls = parser.parse_args().calls
    with tempfile.TemporaryDirectory() as folder:
        models.connect(f"sqlite:///{folder}/bench.db")
        models.create_schema()
        company = models.Company.create(name="bench", mingpian_available_num=5)
        user = models.User.create(company=company, role=models.ROLE_ADMIN, login_name="bench", username="bench",
                                  password_hash="-", token=auth.new_token())
        settings = config.load(environ={})
        timestamp = str(int(time.time() * 1000))
        params = {"timestamp": timestamp, "user_id": str(user.id), "rand_str": auth.sign(timestamp, user.token)}

        def compiled():
            auth.authenticate(params, settings)

        def built_each_time():
            models.User.select(models.User, models.Company).join(models.Company).where(
                models.User.id == user.id).first()

        fast, slow = per_call_us(compiled, calls), per_call_us(built_each_time, calls)
        print(f"auth.authenticate (lookup compiled once): {fast:7.1f} us per call")
        print(f"the lookup alone, built through Peewee    : {slow:7.1f} us per call   ratio {slow / fast:.1f}x")
        models.db.close()


if __name__ == "__main__":
    main()
