"""Accounts and signing: password hashes, login with throttling, tokens, and the signature check.

Everything here blocks (scrypt, database): handlers run it in the executor.
"""
import datetime
import hashlib
import hmac
import secrets

import peewee as pw

from models import (
    USER_ENABLED,
    Company,
    CompiledQuery,
    LoginThrottle,
    Role,
    UsedSignature,
    User,
    db,
    locked,
    now,
    reads,
    write_transaction,
)
from services import audit, clock
from services.errors import AccountDisabled, BadLogin, Throttled, TokenError, invalid
from services.forms import Operation, Str

SCRYPT_R, SCRYPT_P = 8, 1


def new_password(required: bool = True) -> Str:
    """A password a user or an administrator chooses: 6 to 128 characters."""
    return Str(required=required, max_length=128, min_length=6)


# ---- the calls (docs/api.md section 4) ----------------------------------------------------------------

LOGIN = Operation("登录：用户名和密码换取 token", {"username": Str(max_length=64), "password": Str(max_length=128)},
                  codes=(401, 306))
LOGOUT = Operation("退出登录：token 作废")
MODIFY_PASSWORD = Operation("修改自己的密码，返回新的 token",
                            {"old_password": Str(max_length=128), "new_password": new_password()})


# ---- passwords -------------------------------------------------------------------------------------

def hash_password(password, n=16384):
    """A salted scrypt hash that carries its own parameters: scrypt$n$r$p$salt$hash."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=2**27, dklen=32)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def _is_legacy_md5(stored):
    return len(stored) == 32 and all(c in "0123456789abcdef" for c in stored)


def check_password(password, stored):
    """True if `password` matches `stored` (a scrypt hash, or a legacy plain MD5 hex digest)."""
    if _is_legacy_md5(stored):
        return hmac.compare_digest(hashlib.md5(password.encode()).hexdigest(), stored)
    try:
        _, n, r, p, salt, digest = stored.split("$")
        computed = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                  maxmem=2**27, dklen=len(digest) // 2)
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


def new_token():
    return secrets.token_hex(16)


# Easy to read out and type: no 0/O, 1/l/I.
_ONE_TIME_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"


def one_time_password(length=12):
    """A password an administrator hands to a user, who must replace it at the next login (71 bits)."""
    return "".join(secrets.choice(_ONE_TIME_ALPHABET) for _ in range(length))


def sign(timestamp, token):
    """The `rand_str` a client sends: MD5 of timestamp followed by token, lowercase hex."""
    return hashlib.md5(f"{timestamp}{token}".encode()).hexdigest()


# ---- login throttle (shared through the database) ----------------------------------------------------
# Throttle the guesser, not the owner: attempts are counted per login name *from one address* (so a guesser
# elsewhere cannot lock the owner out) and per address whatever the name (so one address cannot try a
# little on every name). An attempt is counted before its password is checked, under a row lock, so
# parallel guesses cannot all slip under the limit; a right password takes its attempt back.

def _throttle_keys(login_name, address):
    """(login name from this address, this address); the name hashed so any text fits the column."""
    name = hashlib.sha256(login_name.encode()).hexdigest()[:32]
    return f"{address} {name}", address[:128]


def reset_keys(user_id, address):
    """A password reset's keys, counted apart from logins': (this user from this address, this address)."""
    return f"reset {address[:100]} {user_id}", f"reset {address[:100]}"


RESET_THROTTLED = "重置密码次数过多，请稍后再试"


def count_attempt(keys, settings, refusal=Throttled.msg):
    """Count one attempt on (subject from this address, this address), or raise Throttled(`refusal`)
    once either has used its limit within auth.login_window_seconds: auth.login_max_failures for the
    first, auth.login_max_failures_per_address for the second. Logins and password resets both go here."""
    auth = settings["auth"]
    subject_key, address_key = keys
    window = datetime.timedelta(seconds=auth["login_window_seconds"])
    if not _reserve_attempt({subject_key: auth["login_max_failures"],
                             address_key: auth["login_max_failures_per_address"]}, window):
        raise Throttled(refusal)


def _reserve_attempt(limits, window):
    """Count one attempt on each key of `limits` (key -> most attempts per window), or write nothing at
    all (so a throttled address adds no rows) and return False if any key has used its limit."""
    current = now()
    keys = list(limits)
    with write_transaction() as transaction:
        # rows first, so there is a row to lock (PostgreSQL); SQLite holds its write lock already
        LoginThrottle.insert_many([{"key": key, "attempts": 0, "window_start": current} for key in keys]) \
            .on_conflict_ignore().execute()
        rows = list(locked(LoginThrottle.select().where(LoginThrottle.key.in_(keys))))
        fresh = {row.key: current - row.window_start >= window for row in rows}
        if any(not fresh[row.key] and row.attempts >= limits[row.key] for row in rows):
            transaction.rollback()
            return False
        for row in rows:
            update = {LoginThrottle.attempts: 1, LoginThrottle.window_start: current} if fresh[row.key] \
                else {LoginThrottle.attempts: LoginThrottle.attempts + 1}
            LoginThrottle.update(update).where(LoginThrottle.key == row.key).execute()
    return True


def _release_attempt(name_key, address_key):
    """The password was right: forget this name's attempts from here, and take this one back from the
    address (its count is of failures, not of logins)."""
    LoginThrottle.delete().where(LoginThrottle.key == name_key).execute()
    LoginThrottle.update(attempts=LoginThrottle.attempts - 1).where(
        (LoginThrottle.key == address_key) & (LoginThrottle.attempts > 0)).execute()


def prune_login_throttle(settings):
    """Forget counts whose window is over (they no longer throttle): the table holds at most
    login_max_failures_per_address + 1 rows per address seen within the window."""
    cutoff = now() - datetime.timedelta(seconds=settings["auth"]["login_window_seconds"])
    return LoginThrottle.delete().where(LoginThrottle.window_start < cutoff).execute()


# ---- login, logout, password change -----------------------------------------------------------------

_DUMMY_HASH = None


def _dummy_hash(n):
    """A hash to check against when the login name is unknown, so both cases take the same time."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None or _DUMMY_HASH.split("$")[1] != str(n):
        _DUMMY_HASH = hash_password(secrets.token_hex(8), n)
    return _DUMMY_HASH


def _refused(note, user, error):
    """A failed login, recorded (when `note` is given) with the user it named. An unknown login name is
    not recorded: it may be a password typed into the wrong field. Returns the error to raise."""
    if note is not None:
        audit.record_failure(note, user, error)
    return error


def login(login_name, password, settings, address="-", note=None):
    """Check the credentials sent from `address` and return the user, with a token. Raises BadLogin,
    Throttled or AccountDisabled. With `note` (services.audit) the login is recorded in the audit trail,
    in the transaction that records it; a failure after, a throttled attempt not at all (the throttle
    bounds the entries a guesser can make)."""
    auth = settings["auth"]
    name_key, address_key = _throttle_keys(login_name, address)
    count_attempt((name_key, address_key), settings)
    user = (User.select(User, Company, Role).join(Company).switch(User).join(Role)
            .where(User.login_name == login_name).first())
    if user is None:
        check_password(password, _dummy_hash(auth["scrypt_n"]))
        raise _refused(note, None, BadLogin())
    if not check_password(password, user.password_hash):
        raise _refused(note, user, BadLogin())
    if user.status != USER_ENABLED:
        _release_attempt(name_key, address_key)
        raise _refused(note, user, AccountDisabled())
    updates: dict[pw.Field, object] = {User.last_login_date: now()}
    if _is_legacy_md5(user.password_hash):
        updates[User.password_hash] = hash_password(password, auth["scrypt_n"])
    with db.atomic():
        User.update(updates).where(User.id == user.id).execute()
        _release_attempt(name_key, address_key)
        if note is not None:
            audit.insert(note, user, 200, user.id)
    previous_login = user.last_login_date
    user.last_login_date = updates[User.last_login_date]
    return user, previous_login


def logout(user):
    """Replace the token, so every signature made with the old one fails."""
    User.update(token=new_token()).where(User.id == user.id).execute()


def change_password(user, old_password, new_password, settings):
    """Set a new password and a new token (old signatures stop working); return the new token."""
    if not check_password(old_password, user.password_hash):
        raise invalid("old_password", "原密码错误")
    token = new_token()
    User.update(password_hash=hash_password(new_password, settings["auth"]["scrypt_n"]),
                token=token, must_change_password=False).where(User.id == user.id).execute()
    return token


# ---- the signature check --------------------------------------------------------------------------

def _parse_user_id(text):
    if not text or not text.isascii() or not text.isdigit() or len(text) > 10:
        raise TokenError()
    return int(text)


def _parse_timestamp(text):
    if not text or not text.isascii() or not text.isdigit() or len(text) > 16:
        raise TokenError()
    return int(text)


_SIGNER_FIELDS = (User._meta.sorted_fields, Company._meta.sorted_fields)
# Compiled once: this runs on every signed call, and building the query costs more than running it.
_SIGNER = CompiledQuery(lambda slot: User.select(*_SIGNER_FIELDS[0], *_SIGNER_FIELDS[1]).join(Company)
                        .where(User.id == slot("user_id")))


def _columns(fields):
    """(name, converter) of each field; text, numbers and ids come from the driver as Python wants them,
    only dates (text on SQLite) and booleans (0/1) need converting."""
    as_is = (pw.CharField, pw.IntegerField, pw.AutoField, pw.ForeignKeyField)
    return [(field.name, None if isinstance(field, as_is) else field.python_value) for field in fields]


_USER_COLUMNS, _COMPANY_COLUMNS = _columns(_SIGNER_FIELDS[0]), _columns(_SIGNER_FIELDS[1])


def _load_signer(user_id):
    """The user with their company, or None. What their row says is remembered until the database changes
    (a new token, a disabled account: any write drops it, models.SqliteReadCache); each call gets instances
    of its own, so no call sees another's changes to them."""
    found = reads.get(("signer", user_id), lambda: _read_signer(user_id))
    if found is None:
        return None
    user = _instance(User, found[0])
    user.__rel__["company"] = _instance(Company, found[1])
    return user


def _read_signer(user_id):
    """(the user's fields, their company's fields) as dicts of Python values, or None."""
    # fetchall, not fetchone: a half-read cursor keeps SQLite's read snapshot open, hiding later commits
    rows = _SIGNER.execute(user_id=user_id).fetchall()
    if not rows:
        return None
    row, split = rows[0], len(_USER_COLUMNS)
    return _fields(_USER_COLUMNS, row[:split]), _fields(_COMPANY_COLUMNS, row[split:])


def _fields(columns, values):
    return {name: value if convert is None or value is None else convert(value)
            for (name, convert), value in zip(columns, values, strict=True)}


def _instance(model, fields):
    """An instance of `model` holding a copy of `fields`, as a query would give it. Built directly:
    Model(**fields) sets each field through its descriptor and marks it dirty, which was half of the
    signature check's cost (the check runs on every signed call)."""
    instance = model.__new__(model)
    instance.__data__ = dict(fields)
    instance._dirty, instance.__rel__ = set(), {}
    return instance


def authenticate(params, settings, max_age_seconds=None):
    """Check a signed call's `rand_str`, `timestamp` and `user_id`; return the calling user.

    `max_age_seconds` replaces the skew window for calls whose timestamp is an upload's id. Whether the
    signature was used before is services.calls' business (it is spent in the work's transaction)."""
    rand_str = params.get("rand_str") or ""
    timestamp = _parse_timestamp(params.get("timestamp"))
    user_id = _parse_user_id(params.get("user_id"))
    skew = settings["auth"]["max_skew_seconds"]
    age = clock.epoch_seconds() - timestamp / 1000
    if age > (max_age_seconds or skew) or -age > skew:
        raise TokenError("时间戳已过期")
    user = _load_signer(user_id)
    if user is None or not hmac.compare_digest(sign(params["timestamp"], user.token).encode(),
                                               rand_str.lower().encode()):  # bytes: text must be ASCII
        raise TokenError()
    if user.status != USER_ENABLED:
        raise AccountDisabled()
    return user


def prune_used_signatures(settings):
    """Forget signatures too old to be accepted again (their timestamp is outside the skew window)."""
    oldest = int(1000 * (clock.epoch_seconds() - settings["auth"]["max_skew_seconds"]))
    return UsedSignature.delete().where(UsedSignature.timestamp < oldest).execute()
