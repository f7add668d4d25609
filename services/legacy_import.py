"""Import the old system's data (its MySQL database and its picture files) into an empty service.

The old database is read with server-side cursors, a thousand rows at a time, inside one consistent
snapshot; rows are written with multi-row INSERTs. Memory stays bounded by what has to be looked up while
streaming: the id sets of companies, roles, users and products, and one (customer, company) -> id map.

All or nothing: everything is written in one transaction of the target database, the roll-up of the
imported days included, so an import that fails or is killed leaves the target as empty as before (run
the same command again). Picture files are stored before that commit, under the URLs the old system
gave them: a re-run writes the same files again, and files left by an import that never committed are
removed by the service's orphan sweep.

Ids are kept (clients sign with their user_id and cache product and picture ids); hence the target must
be empty. Rows that point at missing rows are skipped and counted; so are rows that cannot be used.
Everything here blocks; it runs from the command line, never in the service's event loop.
"""
import concurrent.futures
import contextlib
import dataclasses
import datetime
import hashlib
import io
import re
import time
import urllib.parse
from pathlib import Path

import peewee as pw

import models
from models import (
    BUILTIN_ROLES,
    PICTURE_COVER,
    PICTURE_INTRO,
    PRODUCT_COMPANY,
    PRODUCT_PERSONAL,
    PRODUCT_STATUS_LABELS,
    USER_DISABLED,
    USER_ENABLED,
    AccessEvent,
    Company,
    Customer,
    CustomerBinding,
    FollowUp,
    Product,
    ProductArticle,
    ProductPicture,
    Role,
    RollupState,
    User,
    db,
)
from services import auth, clock, images, stats
from services.activity import MAX_ACTION
from services.errors import FormInvalid
from storage.base import URL_PREFIX, thumbnail_url

# The old system stored naive Asia/Shanghai times. MySQL itself turns every time (_utc_text) into the
# service's naive UTC text, as the service stores every time: parsing a datetime per row in PyMySQL (pure
# Python) took a quarter of the import's time. Company expiry dates stay calendar days of that zone.
# Asia/Shanghai has been UTC+8 without daylight saving since 1991, long before the old system, so a fixed
# offset converts its times exactly.
_UTC_TEXT = "DATE_FORMAT(CONVERT_TZ({}, '+08:00', '+00:00'), '%Y-%m-%d %H:%i:%s')"
PREFIX = "zhugeleida_"  # old tables are zhugeleida_<model>
FETCH = 1000  # rows per fetch from the old database and per INSERT into the target
PACKED_MAX_BYTES = 1 << 20  # a packed text of FETCH access events is about 45 KB
FIRST_IDS = 5  # ids named per kind of skipped row
OLD_SERVER_PATIENCE_SECONDS = 3600
MD5_HEX = re.compile(r"[0-9a-f]{32}")
DEFAULT_AVATAR = "statics/imgs/setAvator.jpg"


class LegacyImportError(Exception):
    """The import cannot start or could not finish; nothing was imported."""


# ---- the report ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class TableReport:
    read: int = 0
    imported: int = 0
    seconds: float = 0.0
    skipped: dict = dataclasses.field(default_factory=dict)  # reason -> [count, first ids]

    def skip(self, reason, row_id=None, count=1):
        entry = self.skipped.setdefault(reason, [0, []])
        entry[0] += count
        if row_id is not None and len(entry[1]) < FIRST_IDS:
            entry[1].append(row_id)

    @property
    def skipped_count(self):
        return sum(count for count, _ in self.skipped.values())


@dataclasses.dataclass
class Report:
    tables: dict = dataclasses.field(default_factory=dict)  # label -> TableReport
    notes: list = dataclasses.field(default_factory=list)  # (label, old id, what was changed)
    files_copied: int = 0
    files_refused: list = dataclasses.field(default_factory=list)  # (picture id, url, why)
    rolled_up_days: int = 0
    rollup_seconds: float = 0.0
    seconds: float = 0.0
    dry_run: bool = False

    def table(self, label):
        return self.tables.setdefault(label, TableReport())

    def lines(self):
        """The summary printed at the end, one line per fact."""
        head = "dry run: nothing was written" if self.dry_run else "imported"
        out = [f"{head} in {self.seconds:.1f} s"]
        for label, t in self.tables.items():
            out.append(f"  {label}: read {t.read}, imported {t.imported}, skipped {t.skipped_count} "
                       f"({t.seconds:.1f} s)")
            for reason, (count, ids) in t.skipped.items():
                first = f" (first ids {', '.join(map(str, ids))})" if ids else ""
                out.append(f"    skipped {count}: {reason}{first}")
        out.append(f"  picture files copied {self.files_copied}, refused {len(self.files_refused)}")
        for picture_id, url, why in self.files_refused:
            out.append(f"    picture {picture_id} {url}: {why}; the picture row is skipped")
        for label, old_id, what in self.notes:
            out.append(f"  {label} {old_id}: {what}" if old_id is not None else f"  {label}: {what}")
        if not self.dry_run:
            out.append(f"  statistics rolled up for {self.rolled_up_days} day(s) ({self.rollup_seconds:.1f} s)")
        return out


# ---- the old database ------------------------------------------------------------------------------------

def parse_url(url):
    """pymysql.connect arguments for mysql://USER:PASSWORD@HOST:PORT/DATABASE."""
    parts = urllib.parse.urlsplit(url)
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    try:
        port = parts.port or 3306
    except ValueError:
        port = None
    if parts.scheme not in ("mysql", "mariadb") or not parts.hostname or not database or port is None:
        raise LegacyImportError("--from must look like mysql://USER:PASSWORD@HOST:PORT/DATABASE")
    return {"host": parts.hostname, "port": port, "user": urllib.parse.unquote(parts.username or ""),
            "password": urllib.parse.unquote(parts.password or ""), "database": database}


def connect_old(url):
    """A connection to the old database that streams results, inside one consistent read-only snapshot."""
    import pymysql  # only the import needs the driver
    arguments = parse_url(url)
    try:
        connection = pymysql.connect(**arguments, charset="utf8mb4", connect_timeout=10,
                                     cursorclass=pymysql.cursors.SSCursor)
        with connection.cursor() as cursor:
            # the server waits while a batch is worked on (pictures can take minutes): do not hang up on us
            cursor.execute(f"SET SESSION net_write_timeout = {OLD_SERVER_PATIENCE_SECONDS}")
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    except pymysql.MySQLError as e:
        where = f"{arguments['host']}:{arguments['port']}/{arguments['database']}"
        raise LegacyImportError(f"cannot read the old database {where}: {e.args[-1]}") from None
    return connection


def _rows(connection, sql):
    """Stream the rows of `sql` in lists of up to FETCH rows (server-side cursor: never the whole table).
    (A thread reading ahead, to overlap PyMySQL's decoding with the writes, made it slower on two busy cores.)"""
    with connection.cursor() as cursor:
        cursor.execute(sql)
        while batch := cursor.fetchmany(FETCH):
            yield batch


def _packed_rows(connection, sql):
    """Like _rows, for `sql` selecting one packed text per FETCH rows (see _packed_sql): lists of rows of
    texts (a NULL is '')."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET SESSION group_concat_max_len = {PACKED_MAX_BYTES}")
        cursor.execute(sql)
        while batch := cursor.fetchmany(16):
            for (packed,) in batch:
                yield [row.split(",") for row in packed.split(";")]


def _packed_sql(table, columns):
    """SQL selecting `columns` (numbers and times: no ',' or ';') of the rows of `table`, FETCH rows packed
    into one text. PyMySQL decodes each row in Python (about 15 us a row, most of a large import's time);
    splitting one long text per thousand rows costs about 1 us a row."""
    fields = ", ".join(f"COALESCE({column}, '')" for column in columns)
    return (f"SELECT GROUP_CONCAT(CONCAT_WS(',', {fields}) ORDER BY id SEPARATOR ';') FROM `{PREFIX}{table}` "
            f"GROUP BY id DIV {FETCH} ORDER BY NULL")


def _count(connection, table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM `{PREFIX}{table}`")
        return cursor.fetchall()[0][0]


# ---- values ----------------------------------------------------------------------------------------------

def _text(value, length=None):
    text = "" if value is None else str(value)
    return text[:length] if length else text


def _naive(value):
    """An old naive datetime (a local time), or None for NULL and MySQL's zero dates (which arrive as text)."""
    return value.replace(microsecond=0) if isinstance(value, datetime.datetime) else None


def _utc_text(column):
    """SQL giving an event time column as the service stores it: naive UTC, as text (NULL for none)."""
    return _UTC_TEXT.format(column)


def _unique(name, taken, old_id, limit):
    """`name`, or `name` with the old id appended if that is taken (cut to `limit` characters)."""
    candidate, n = name[:limit], 0
    while not candidate or candidate in taken:
        n += 1
        suffix = f"-{old_id}" if n == 1 else f"-{old_id}-{n}"
        candidate = name[:limit - len(suffix)] + suffix
    taken.add(candidate)
    return candidate


# ---- the import ------------------------------------------------------------------------------------------

def target_is_empty():
    """True if the service holds no data yet (the built-in roles apart)."""
    if Role.select().where(Role.id.not_in(list(BUILTIN_ROLES))).exists():
        return False
    return not any(model.select().exists() for model in (
        Company, User, Product, ProductArticle, ProductPicture, Customer, CustomerBinding, FollowUp, AccessEvent))


def run(old_url, settings, storage, files_root=None, dry_run=False, progress=None, record=None):
    """Import everything; return the Report. Raises LegacyImportError (nothing imported) if the target
    is not empty or the old database cannot be read. `record()` runs in the import's transaction (its
    audit entry), unless it is a dry run."""
    import pymysql
    started = time.monotonic()
    connection = connect_old(old_url)
    importer = Importer(connection, settings, storage, files_root, dry_run, progress)
    try:
        if dry_run:
            importer.check_target()
            importer.import_all()
        else:
            try:
                with models.write_transaction():
                    importer.check_target()
                    with _indexes_built_after(EVENT_MODELS):
                        importer.import_all()
                    importer.roll_up()
                    importer.continue_sequences()
                    if record is not None:
                        record()
            except BaseException:
                importer.remove_files()  # no row refers to them now
                raise
    except pymysql.MySQLError as e:
        raise LegacyImportError(f"reading the old database failed: {e.args[-1]}") from None
    except OSError as e:
        raise LegacyImportError(f"writing the pictures failed: {e}") from None
    finally:
        connection.close()
    importer.report.seconds = time.monotonic() - started
    return importer.report


EVENT_MODELS = (Customer, CustomerBinding, FollowUp, AccessEvent)


@contextlib.contextmanager
def _indexes_built_after(event_models):
    """Drop the tables' plain indexes and build them again once the rows are in (in the same transaction):
    building an index once is much cheaper than keeping it sorted through a million inserts in time
    order, which is not the old tables' id order (bench/import_legacy.py on SQLite: 195 s -> 113 s)."""
    saved = [(index.name, index.sql) for model in event_models
             for index in db.get_indexes(model._meta.table_name) if not index.unique]
    for name, _ in saved:
        db.execute_sql(f'DROP INDEX "{name}"')
    yield
    for _, sql in saved:
        db.execute_sql(sql)


class _NoProgress:
    def update(self, n):
        pass

    def close(self):
        pass


class Importer:
    def __init__(self, connection, settings, storage, files_root, dry_run, progress):
        self.old, self.settings, self.storage, self.dry_run = connection, settings, storage, dry_run
        self.files_root = Path(files_root).resolve() if files_root else None
        self.progress = progress or (lambda label, total: _NoProgress())
        self.report = Report(dry_run=dry_run)
        self.companies, self.roles = set(), set(BUILTIN_ROLES)
        self.users = {}  # id -> company id
        self.products = {}  # id -> (company id, owner id or None)
        self.customers = {}  # (old customer id, company id) -> customer id
        self.stored_urls = []
        self.first_event = self.last_event = None  # naive UTC text, for the roll-up

    def check_target(self):
        if not target_is_empty():
            raise LegacyImportError("the target service already holds data: import into an empty service "
                                    "(ids are kept, so they must all be free)")

    def import_all(self):
        self.import_companies()
        self.import_roles()
        self.import_users()
        self.import_products()
        self.import_articles()
        self.import_pictures()
        self.import_customers()
        self.import_bindings()
        self.import_follow_ups()
        self.import_access_events()

    # -- helpers --

    def _stream(self, label, table, sql, rows=_rows):
        """(TableReport, batches of rows) for one old table, with a progress bar."""
        report = self.report.table(label)
        started = time.monotonic()
        bar = self.progress(label, _count(self.old, table))
        try:
            for batch in rows(self.old, sql):
                report.read += len(batch)
                yield report, batch
                bar.update(len(batch))
        finally:
            bar.close()
            report.seconds = time.monotonic() - started

    def _write(self, model, fields, rows, report):
        if rows and not self.dry_run:
            models.insert_rows(model, fields, rows)
        report.imported += len(rows)

    def _note_event(self, at):
        if self.first_event is None or at < self.first_event:
            self.first_event = at
        if self.last_event is None or at > self.last_event:
            self.last_event = at

    # -- companies, roles, users --

    def import_companies(self):
        names = set()
        fields = [Company.id, Company.name, Company.mingpian_available_num, Company.expire_date,
                  Company.create_date, Company.corp_id, Company.tongxunlu_secret]
        sql = (f"SELECT id, name, mingpian_available_num, user_expired, {_utc_text('create_date')}, corp_id, "
               f"tongxunlu_secret FROM `{PREFIX}zgld_company` ORDER BY id")
        for report, batch in self._stream("companies", "zgld_company", sql):
            rows = []
            for old_id, name, quota, expired, created, corp_id, secret in batch:
                unique = _unique(_text(name).strip(), names, old_id, 128)
                if unique != _text(name).strip():
                    self.report.notes.append(("company", old_id, f"name {name!r} already used: named {unique!r}"))
                expires = _naive(expired)
                rows.append((old_id, unique, max(int(quota or 0), 0), expires.date() if expires else None,
                             created or models.now(), _text(corp_id, 128), _text(secret, 256)))
                self.companies.add(old_id)
            self._write(Company, fields, rows, report)

    def import_roles(self):
        names = set(BUILTIN_ROLES.values())
        sql = f"SELECT id, name, {_utc_text('create_date')} FROM `{PREFIX}zgld_role` ORDER BY id"
        for report, batch in self._stream("roles", "zgld_role", sql):
            rows = []
            for old_id, name, created in batch:
                if old_id in BUILTIN_ROLES:  # 管理员 and 普通用户 by convention: the built-in ones serve
                    report.imported += 1
                    continue
                unique = _unique(_text(name).strip(), names, old_id, 64)
                if unique != _text(name).strip():
                    self.report.notes.append(("role", old_id, f"name {name!r} already used: named {unique!r}"))
                rows.append((old_id, unique, created or models.now()))
                self.roles.add(old_id)
            self._write(Role, [Role.id, Role.name, Role.create_date], rows, report)

    def import_users(self):
        logins, tokens = set(), set()
        fields = [User.id, User.company, User.role, User.login_name, User.username, User.password_hash,
                  User.status, User.token, User.position, User.phone, User.mingpian_phone, User.avatar,
                  User.create_date, User.last_login_date, User.must_change_password]
        sql = (f"SELECT id, username, password, company_id, role_id, status, token, position, telephone, "
               f"wechat_phone, mingpian_phone, avatar, {_utc_text('create_date')}, {_utc_text('last_login_date')} "
               f"FROM `{PREFIX}zgld_userprofile` ORDER BY id")
        for report, batch in self._stream("users", "zgld_userprofile", sql):
            rows = []
            for (old_id, username, password, company, role, status, token, position, telephone, wechat_phone,
                 card_phone, avatar, created, last_login) in batch:
                if company not in self.companies:
                    report.skip("company missing", old_id)
                    continue
                if role not in self.roles:
                    report.skip("role missing", old_id)
                    continue
                rows.append((old_id, company, role, self._login_name(old_id, username, logins),
                             _text(username, 64), self._password(old_id, password),
                             status if status in (USER_ENABLED, USER_DISABLED) else USER_DISABLED,
                             self._token(old_id, token, tokens), _text(position, 64),
                             _text(telephone or wechat_phone, 32), _text(card_phone, 32),
                             _text(avatar, 255) or DEFAULT_AVATAR, created or models.now(), last_login, False))
                self.users[old_id] = company
            self._write(User, fields, rows, report)

    def _login_name(self, old_id, username, taken):
        """The old login matched `username` (成员姓名): it becomes the login name, made unique."""
        name = _text(username).strip()
        login = _unique(name, taken, old_id, 64)
        if login != name:
            why = "has no name" if not name else f"shares the name {name!r} with another user"
            self.report.notes.append(("user", old_id, f"{why}: logs in as {login!r}"))
        return login

    def _password(self, old_id, password):
        digest = _text(password).strip().lower()
        if MD5_HEX.fullmatch(digest):
            return digest  # accepted once at the next login, then re-hashed
        self.report.notes.append(("user", old_id, "has no usable password: cannot log in until one is set"))
        return "!"  # matches no password

    def _token(self, old_id, token, taken):
        token = _text(token).strip().lower()
        if not MD5_HEX.fullmatch(token) or token in taken:
            token = auth.new_token()
            self.report.notes.append(("user", old_id, "had no usable token: signs in again to get one"))
        taken.add(token)
        return token

    # -- products --

    def import_products(self):
        fields = [Product.id, Product.company, Product.user, Product.product_type, Product.name, Product.price,
                  Product.reason, Product.status, Product.create_date]
        sql = (f"SELECT id, status, user_id, company_id, name, price, reason, {_utc_text('create_date')} "
               f"FROM `{PREFIX}zgld_product` ORDER BY id")
        for report, batch in self._stream("products", "zgld_product", sql):
            rows = []
            for old_id, status, owner, company, name, price, reason, created in batch:
                if owner is not None and owner not in self.users:
                    report.skip("owner (user) missing or not imported", old_id)
                    continue
                company = self.users[owner] if owner is not None else company  # personal: the owner's
                if company not in self.companies:
                    report.skip("company missing", old_id)
                    continue
                if status not in PRODUCT_STATUS_LABELS:
                    report.skip("unknown status", old_id)
                    continue
                kind = PRODUCT_COMPANY if owner is None else PRODUCT_PERSONAL
                rows.append((old_id, company, owner, kind, _text(name, 128), _text(price, 64), _text(reason, 1024),
                             status, created or models.now()))
                self.products[old_id] = (company, owner)
            self._write(Product, fields, rows, report)

    def import_articles(self):
        fields = [ProductArticle.id, ProductArticle.product, ProductArticle.title, ProductArticle.content,
                  ProductArticle.order]
        sql = (f"SELECT id, product_id, type, `order`, title, content FROM `{PREFIX}zgld_product_article` "
               f"ORDER BY id")
        for report, batch in self._stream("product articles", "zgld_product_article", sql):
            rows = []
            for old_id, product, kind, order, title, content in batch:
                if product not in self.products:
                    report.skip("product missing or not imported", old_id)
                    continue
                if kind == 1:  # 标题
                    rows.append((old_id, product, _text(title or content, 256), None, order or 0))
                else:  # 内容
                    rows.append((old_id, product, None, _text(content), order or 0))
            self._write(ProductArticle, fields, rows, report)

    def import_pictures(self):
        fields = [ProductPicture.id, ProductPicture.user, ProductPicture.company, ProductPicture.product,
                  ProductPicture.picture_type, ProductPicture.url, ProductPicture.order, ProductPicture.byte_size,
                  ProductPicture.width, ProductPicture.height, ProductPicture.sha256, ProductPicture.create_date]
        sql = (f"SELECT id, product_id, picture_type, picture_url, `order`, {_utc_text('create_date')} "
               f"FROM `{PREFIX}zgld_product_picture` ORDER BY id")
        # Pictures are checked as many at a time as there are image threads (each holds one file in memory).
        with concurrent.futures.ThreadPoolExecutor(self.settings["upload"]["image_threads"]) as pool:
            for report, batch in self._stream("product pictures", "zgld_product_picture", sql):
                wanted = []
                for old_id, product, kind, url, order, created in batch:
                    if product is None:
                        report.skip("never attached to a product", old_id)
                    elif product not in self.products:
                        report.skip("product missing or not imported", old_id)
                    else:
                        wanted.append((old_id, product, kind, _text(url).strip(), order, created))
                rows = []
                files = pool.map(lambda row: self._copy_picture(row[0], row[3]), wanted)
                for (old_id, product, kind, url, order, created), file in zip(wanted, files, strict=True):
                    if file is None:
                        report.skip("file missing or not a valid image", old_id)
                        continue
                    self.report.files_copied += 1
                    company, owner = self.products[product]
                    rows.append((old_id, owner, company, product, kind if kind in (PICTURE_COVER, PICTURE_INTRO)
                                 else PICTURE_COVER, url, order or 0, *file, created or models.now()))
                self._write(ProductPicture, fields, rows, report)

    def _copy_picture(self, old_id, url):
        """Check the file behind `url` as an upload is checked, store it (and its thumbnail) under the same
        URL; return (bytes, width, height, sha256), or None if it was refused (reported). Thread-safe."""
        def refuse(why):
            self.report.files_refused.append((old_id, url, why))

        limits = self.settings["upload"]
        if not url.startswith(URL_PREFIX) or self.storage.path_for(url) is None:
            return refuse("not a path under statics/")
        if self.files_root is None:
            return refuse("no --files folder given")
        source = (self.files_root / url).resolve()
        if not source.is_relative_to(self.files_root) or not source.is_file():
            return refuse("file missing")
        if source.stat().st_size > limits["max_upload_bytes"]:
            return refuse(f"larger than {limits['max_upload_bytes']} bytes")
        try:
            picture = images.process(io.BytesIO(source.read_bytes()), limits["max_pixels"], limits["thumbnail_px"],
                                     limits["jpeg_quality"], limits["image_threads"])
        except FormInvalid as e:
            return refuse("; ".join(message for messages in e.data.values() for message in messages))
        except OSError as e:
            return refuse(f"cannot read: {e.strerror}")
        if not self.dry_run:
            self.storage.store(thumbnail_url(url), picture.thumbnail)
            self.storage.store(url, picture.data)
            self.stored_urls.append(url)
        return len(picture.data), picture.width, picture.height, hashlib.sha256(picture.data).hexdigest()

    def remove_files(self):
        for url in self.stored_urls:
            self.storage.delete(url)

    # -- customers and their activity --

    def import_customers(self):
        """A customer of the old system was global; here it belongs to a company: one row for each company
        whose users it was bound to or visited. The first keeps the old id, others get new ids."""
        with self.old.cursor() as cursor:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM `{PREFIX}zgld_customer`")
            self.next_customer_id = cursor.fetchall()[0][0] + 1
        report = self.report.table("customers")
        started = time.monotonic()
        report.read = _count(self.old, "zgld_customer")
        bar = self.progress("customers", report.read)
        fields = [Customer.id, Customer.company, Customer.openid, Customer.name, Customer.create_date,
                  Customer.first_bound_at]
        used = 0
        try:
            for rows, customers in self._customer_rows():
                self._write(Customer, fields, rows, report)
                used += customers
                bar.update(customers)
        finally:
            bar.close()
            report.seconds = time.monotonic() - started
        if report.read > used:
            report.skip("never bound to or visited by a user of an imported company", count=report.read - used)
        self.report.notes.append(("customers", None, f"{used} old customers became {report.imported} customers: "
                                                    f"one per company whose users they met"))

    def _customer_rows(self):
        """Batches of (customer rows, old customers they come from)."""
        # Each (customer, user) pair that bindings, follow-ups or visits name, with its first binding,
        # grouped by customer: all of one customer's pairs arrive together.
        # Grouped before the customer's columns are joined: grouping rows that carry them took three times as long.
        sql = (f"SELECT g.customer_id, g.user_id, {_utc_text('g.bound')}, c.openid, c.username, c.nickname, "
               f"{_utc_text('c.create_date')} FROM (SELECT customer_id, user_id, MIN(bound) AS bound FROM ("
               f"SELECT customer_id, user_id, create_date AS bound FROM `{PREFIX}zgld_user_customer_belonger` "
               f"UNION ALL SELECT customer_id, user_id, NULL FROM `{PREFIX}zgld_user_customer_flowup` "
               f"UNION ALL SELECT DISTINCT customer_id, user_id, NULL FROM `{PREFIX}zgld_accesslog`) p "
               f"GROUP BY customer_id, user_id) g JOIN `{PREFIX}zgld_customer` c ON c.id = g.customer_id "
               f"ORDER BY g.customer_id, g.user_id")
        pending = {}  # new id -> row (a list: its first binding may still move earlier)
        openids = {}  # (company, openid) -> new id: unique per company here
        used, previous = 0, None
        for batch in _rows(self.old, sql):
            for old_id, user, bound, openid, username, nickname, created in batch:
                company = self.users.get(user)
                if company is None:
                    continue
                if old_id != previous:
                    used, previous, old_id_free = used + 1, old_id, True
                if bound is not None:
                    self._note_event(bound)
                known = self.customers.get((old_id, company))
                if known is None and (company, openid) in openids:
                    known = self.customers[old_id, company] = openids[company, openid]
                    self.report.notes.append(("customer", old_id, f"has the openid of customer {known} of "
                                                                  f"company {company}: merged into it"))
                if known is not None:  # another user of the same company: the earliest binding counts
                    self._earlier_binding(pending, known, bound)
                    continue
                if old_id_free:  # the customer's first company keeps its id
                    new_id, old_id_free = old_id, False
                else:
                    new_id, self.next_customer_id = self.next_customer_id, self.next_customer_id + 1
                self.customers[old_id, company] = new_id
                openids[company, openid] = new_id
                pending[new_id] = [new_id, company, _text(openid, 64), _text(username or nickname, 64),
                                   created or models.utcnow(), bound]
            if len(pending) >= FETCH:
                yield [tuple(row) for row in pending.values()], used
                pending, used = {}, 0
        yield [tuple(row) for row in pending.values()], used

    def _earlier_binding(self, pending, customer_id, bound):
        if bound is None:
            return
        row = pending.get(customer_id)
        if row is not None:
            if row[5] is None or bound < row[5]:
                row[5] = bound
        elif not self.dry_run:  # written with an earlier batch
            Customer.update(first_bound_at=bound).where(
                Customer.id == customer_id,
                Customer.first_bound_at.is_null() | (Customer.first_bound_at > bound)).execute()

    def _event(self, report, old_id, user, customer):
        """(company, customer id) for an event of `user` about old `customer`, or None if skipped."""
        company = self.users.get(user)
        if company is None:
            report.skip("user missing or not imported", old_id)
            return None
        customer_id = self.customers.get((customer, company))
        if customer_id is None:
            report.skip("customer missing", old_id)
            return None
        return company, customer_id

    def import_bindings(self):
        fields = [CustomerBinding.id, CustomerBinding.company, CustomerBinding.customer, CustomerBinding.user,
                  CustomerBinding.source, CustomerBinding.happened_at]
        sql = (f"SELECT id, user_id, customer_id, source, {_utc_text('create_date')} "
               f"FROM `{PREFIX}zgld_user_customer_belonger` ORDER BY id")
        for report, batch in self._stream("bindings", "zgld_user_customer_belonger", sql):
            rows = []
            for old_id, user, customer, source, at in batch:
                target = self._event(report, old_id, user, customer)
                if target is None:
                    continue
                if at is None:
                    report.skip("no date", old_id)
                    continue
                rows.append((old_id, *target, user, source if source in (1, 2) else 1, at))
            self._write(CustomerBinding, fields, rows, report)

    def import_follow_ups(self):
        fields = [FollowUp.id, FollowUp.company, FollowUp.customer, FollowUp.user, FollowUp.content,
                  FollowUp.happened_at]
        sql = (f"SELECT f.id, p.id, p.user_id, p.customer_id, f.follow_info, {_utc_text('f.create_date')} "
               f"FROM `{PREFIX}zgld_follow_info` f LEFT JOIN `{PREFIX}zgld_user_customer_flowup` p "
               f"ON p.id = f.user_customer_flowup_id ORDER BY f.id")
        for report, batch in self._stream("follow-ups", "zgld_follow_info", sql):
            rows = []
            for old_id, pair, user, customer, content, at in batch:
                if pair is None:
                    report.skip("follow-up pair (flowup) missing", old_id)
                    continue
                target = self._event(report, old_id, user, customer)
                if target is None:
                    continue
                if at is None:
                    report.skip("no date", old_id)
                    continue
                self._note_event(at)
                rows.append((old_id, *target, user, _text(content), at))
            self._write(FollowUp, fields, rows, report)

    def import_access_events(self):
        fields = [AccessEvent.id, AccessEvent.company, AccessEvent.customer, AccessEvent.user, AccessEvent.action,
                  AccessEvent.happened_at]
        sql = _packed_sql("zgld_accesslog", ["id", "user_id", "customer_id", "action", _utc_text("create_date")])
        users, customers = self.users, self.customers
        for report, batch in self._stream("access events", "zgld_accesslog", sql, rows=_packed_rows):
            rows = []
            first = last = None
            for old_id, user, customer, action, at in batch:
                # _event inlined: this loop runs a million times in a large import
                try:
                    old_id, user, customer, action = int(old_id), int(user), int(customer), int(action)
                except ValueError:  # NULL in a column declared NOT NULL
                    report.skip("no user, customer or action", old_id)
                    continue
                company = users.get(user)
                customer_id = customers.get((customer, company))
                if customer_id is None or not 1 <= action <= MAX_ACTION or not at:
                    self._skip_access(report, old_id, company, action, at)
                    continue
                if first is None or at < first:
                    first = at
                if last is None or at > last:
                    last = at
                rows.append((old_id, company, customer_id, user, action, at))
            if first is not None:
                self._note_event(first)
                self._note_event(last)
            self._write(AccessEvent, fields, rows, report)

    def _skip_access(self, report, old_id, company, action, created):
        if company is None:
            report.skip("user missing or not imported", old_id)
        elif not 1 <= action <= MAX_ACTION:
            report.skip(f"action outside 1..{MAX_ACTION}", old_id)
        elif not created:
            report.skip("no date", old_id)
        else:
            report.skip("customer missing", old_id)

    # -- after the rows --

    def roll_up(self):
        """Roll up every imported day before today (today is counted from the records), in the import's
        transaction, and mark the roll-up done through yesterday: before the import there was nothing."""
        started = time.monotonic()
        tz = clock.zone(self.settings)
        yesterday = clock.local_today(self.settings) - datetime.timedelta(days=1)
        if self.first_event is not None and self.last_event is not None:  # set together
            first = clock.local_day(datetime.datetime.fromisoformat(self.first_event), tz)
            last = min(clock.local_day(datetime.datetime.fromisoformat(self.last_event), tz), yesterday)
            if first <= last:
                self.report.rolled_up_days = stats.rebuild(first, last, self.settings)
        done = RollupState.get_or_none(RollupState.name == stats.ROLLUP)
        if done is None or done.done_through is None or done.done_through < yesterday:
            RollupState.insert(name=stats.ROLLUP, done_through=yesterday).on_conflict(
                conflict_target=[RollupState.name], preserve=[RollupState.done_through]).execute()
        self.report.rollup_seconds = time.monotonic() - started

    def continue_sequences(self):
        """PostgreSQL: explicit ids do not move the sequences; move each past the largest id."""
        if not isinstance(db.obj, pw.PostgresqlDatabase):
            return
        for model in (Company, Role, User, Product, ProductArticle, ProductPicture, Customer, CustomerBinding,
                      FollowUp, AccessEvent):
            table = model._meta.table_name
            db.execute_sql(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                           f"GREATEST((SELECT MAX(id) FROM \"{table}\"), 1))")
