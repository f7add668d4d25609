"""Benchmark: import-legacy of an old database with 1,000,000 access events into a new SQLite service.

    .venv/bin/python bench/import_legacy.py [--events 1000000] [--mysql mysql://root@127.0.0.1:3306]

Builds the old system's tables in a new MariaDB/MySQL database (`zgld_legacy_bench`, dropped afterwards)
with LOAD DATA LOCAL: 20 companies, 50 users each, and in proportion to the access events 10 % customers,
10 % bindings and follow-up pairs, 20 % follow-ups, 1 product per 500 events with two articles and a
picture file each, over 365 days. Then runs `server.py import-legacy` on a temporary SQLite service and
prints access events per second end to end (the whole command: every table, the pictures and the roll-up)
and the command's peak RSS. Targets: at least 20,000 events/s, peak RSS under 200 MB.
"""
import argparse
import datetime
import hashlib
import io
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from tests import legacy_db  # noqa: E402

DATABASE = "zgld_legacy_bench"
COMPANIES, USERS_PER_COMPANY = 20, 50
PICTURES = "statics/zhugeleida/imgs/qiyeweixin/product"


def _tsv(path, rows):
    r"""Write rows for LOAD DATA (tab-separated, \N for NULL)."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")


def _load(connection, folder, table, columns, rows):
    path = folder / f"{table}.tsv"
    _tsv(path, rows)
    with connection.cursor() as cursor:
        cursor.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE zhugeleida_{table} CHARACTER SET utf8mb4 "
                       f"({', '.join(f'`{c}`' for c in columns)})", [str(path)])
    path.unlink()


def build(events, folder, files_root):
    """The old database with `events` access events and proportionate other rows; returns its URL."""
    rng = random.Random(7)
    now = datetime.datetime.now().replace(microsecond=0)
    start = now - datetime.timedelta(days=365)
    span = int((now - start).total_seconds())

    def when():
        return start + datetime.timedelta(seconds=rng.randrange(span))

    connection = legacy_db.create(DATABASE)
    users = COMPANIES * USERS_PER_COMPANY
    customers, pairs, products = events // 10, events // 10, max(events // 500, 1)
    _load(connection, folder, "zgld_company", ["id", "name", "address", "corp_id", "tongxunlu_secret",
                                               "website_content", "mingpian_available_num", "create_date"],
          ((n, f"公司{n}", "", f"corp{n}", f"secret{n}", "", 100, start) for n in range(1, COMPANIES + 1)))
    _load(connection, folder, "zgld_role", ["id", "name", "create_date"],
          [(1, "管理员", start), (2, "普通用户", start)])
    password = hashlib.md5(b"secret123").hexdigest()
    _load(connection, folder, "zgld_userprofile",
          ["id", "userid", "name", "password", "username", "gender", "company_id", "position", "role_id",
           "is_show_phone", "token", "avatar", "status", "popularity", "praise", "forward", "create_date"],
          ((n, "", "", password, f"成员{n}", 1, (n - 1) // USERS_PER_COMPANY + 1, "销售", 1 if n % 50 == 1 else 2,
            1, hashlib.md5(f"t{n}".encode()).hexdigest(), "statics/imgs/setAvator.jpg", 1, 0, 0, 0, start)
           for n in range(1, users + 1)))
    _load(connection, folder, "zgld_product", ["id", "status", "user_id", "company_id", "name", "price", "reason",
                                               "create_date"],
          ((n, 1, None if n % 2 else rng.randrange(1, users + 1), rng.randrange(1, COMPANIES + 1), f"产品{n}", "99",
            "好", when()) for n in range(1, products + 1)))
    _load(connection, folder, "zgld_product_article", ["product_id", "type", "order", "title", "content",
                                                       "create_date"],
          (row for n in range(1, products + 1) for row in ((n, 1, 1, "标题", None, now), (n, 2, 3, None, "正文", now))))
    picture_folder = files_root / PICTURES
    picture_folder.mkdir(parents=True)
    for n in range(1, products + 1):
        out = io.BytesIO()
        Image.new("RGB", (64, 48), (n % 256, 80, 160)).save(out, "JPEG")
        (picture_folder / f"{n}.jpg").write_bytes(out.getvalue())
    _load(connection, folder, "zgld_product_picture", ["order", "product_id", "picture_type", "picture_url",
                                                       "create_date"],
          ((1, n, 1, f"{PICTURES}/{n}.jpg", now) for n in range(1, products + 1)))
    _load(connection, folder, "zgld_customer", ["id", "username", "openid", "user_type", "headimgurl", "create_date"],
          ((n, f"客户{n}", f"openid{n:012d}", 1, "", start) for n in range(1, customers + 1)))
    pair_list = [(rng.randrange(1, users + 1), rng.randrange(1, customers + 1)) for _ in range(pairs)]
    _load(connection, folder, "zgld_user_customer_belonger", ["user_id", "customer_id", "source", "create_date"],
          ((user, customer, rng.choice((1, 2)), when()) for user, customer in pair_list))
    _load(connection, folder, "zgld_user_customer_flowup", ["id", "user_id", "customer_id", "create_date"],
          ((n, user, customer, start) for n, (user, customer) in enumerate(pair_list, 1)))
    _load(connection, folder, "zgld_follow_info", ["user_customer_flowup_id", "follow_info", "create_date"],
          ((rng.randrange(1, pairs + 1), "回访", when()) for _ in range(events // 5)))
    _load(connection, folder, "zgld_accesslog", ["action", "user_id", "customer_id", "remark", "is_new_msg",
                                                 "create_date"],
          ((rng.randrange(1, 14), *pair_list[rng.randrange(pairs)], "", 1, when()) for _ in range(events)))
    connection.close()
    return legacy_db.database_url(DATABASE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--mysql", default=legacy_db.OLD_SERVER, help="the MariaDB/MySQL server (no database)")
    parser.add_argument("--keep", action="store_true", help=f"keep the old database {DATABASE} afterwards")
    args = parser.parse_args()
    legacy_db.OLD_SERVER = args.mysql
    work = Path(tempfile.mkdtemp(prefix="zgld-import-bench-"))
    try:
        files_root = work / "old"
        began = time.monotonic()
        url = build(args.events, work, files_root)
        print(f"old database built with {args.events:,} access events in {time.monotonic() - began:.1f} s")
        config_path = work / "config.yaml"
        config_path.write_text(f"database:\n  url: sqlite:///{work}/new/zhugeleida.db\nstorage:\n"
                               f"  root: {work}/new/statics\n  staging: {work}/new/uploads\n")
        command = [sys.executable, str(ROOT / "server.py"), "--config", str(config_path), "import-legacy",
                   "--from", url, "--files", str(files_root)]
        began = time.monotonic()
        done = subprocess.run(command, cwd=work, capture_output=True, text=True)
        seconds = time.monotonic() - began
        if done.returncode != 0:
            sys.exit(f"import failed:\n{done.stderr[-3000:]}")
        print(done.stdout)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the import is the only child
        rate = args.events / seconds
        print(f"import-legacy end to end: {seconds:.1f} s, {rate:,.0f} access events/s (target >= 20,000); "
              f"peak RSS {peak_mb:.0f} MB (target < 200 MB)")
    finally:
        if not args.keep:
            legacy_db.drop(DATABASE)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
