"""Accounts and signing: password hashes, login with throttling, tokens, and the signature check.

Everything here blocks (scrypt, database): handlers run it in the executor.
"""
import datetime
import hashlib
import hmac
import secrets
import time

from models import USER_ENABLED, Company, CompiledQuery, LoginFailure, Role, UsedSignature, User, db, now
from services.errors import AccountDisabled, BadLogin, TokenError, invalid

SCRYPT_R, SCRYPT_P = 8, 1


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


def sign(timestamp, token):
    """The `rand_str` a client sends: MD5 of timestamp followed by token, lowercase hex."""
    return hashlib.md5(f"{timestamp}{token}".encode()).hexdigest()


# ---- login throttle (shared through the database) ----------------------------------------------------

def _throttled(login_name, max_failures, window):
    row = LoginFailure.get_or_none(LoginFailure.login_name == login_name)
    return row is not None and row.failures >= max_failures and now() - row.window_start < window


def _record_failure(login_name, window):
    with db.atomic():
        row = LoginFailure.get_or_none(LoginFailure.login_name == login_name)
        if row is None:
            LoginFailure.insert(login_name=login_name, failures=1, window_start=now()).on_conflict(
                conflict_target=[LoginFailure.login_name],
                update={LoginFailure.failures: LoginFailure.failures + 1}).execute()
        elif now() - row.window_start >= window:
            LoginFailure.update(failures=1, window_start=now()).where(
                LoginFailure.login_name == login_name).execute()
        else:
            LoginFailure.update(failures=LoginFailure.failures + 1).where(
                LoginFailure.login_name == login_name).execute()


# ---- login, logout, password change -----------------------------------------------------------------

_DUMMY_HASH = None


def _dummy_hash(n):
    """A hash to check against when the login name is unknown, so both cases take the same time."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None or _DUMMY_HASH.split("$")[1] != str(n):
        _DUMMY_HASH = hash_password(secrets.token_hex(8), n)
    return _DUMMY_HASH


def login(login_name, password, settings):
    """Check the credentials and return the user, with a token. Raises BadLogin or AccountDisabled."""
    auth = settings["auth"]
    window = datetime.timedelta(seconds=auth["login_window_seconds"])
    if _throttled(login_name, auth["login_max_failures"], window):
        raise BadLogin("登录失败次数过多，请稍后再试")
    user = (User.select(User, Company, Role).join(Company).switch(User).join(Role)
            .where(User.login_name == login_name).first())
    if user is None:
        check_password(password, _dummy_hash(auth["scrypt_n"]))
        _record_failure(login_name, window)
        raise BadLogin()
    if not check_password(password, user.password_hash):
        _record_failure(login_name, window)
        raise BadLogin()
    if user.status != USER_ENABLED:
        raise AccountDisabled()
    updates = {User.last_login_date: now()}
    if _is_legacy_md5(user.password_hash):
        updates[User.password_hash] = hash_password(password, auth["scrypt_n"])
    with db.atomic():
        User.update(updates).where(User.id == user.id).execute()
        LoginFailure.delete().where(LoginFailure.login_name == login_name).execute()
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
                token=token).where(User.id == user.id).execute()
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


def _load_signer(user_id):
    """The user with their company, or None."""
    # fetchall, not fetchone: a half-read cursor keeps SQLite's read snapshot open, hiding later commits
    rows = _SIGNER.execute(user_id=user_id).fetchall()
    if not rows:
        return None
    values = iter(rows[0])
    user, company = ({f.name: f.python_value(next(values)) for f in fields} for fields in _SIGNER_FIELDS)
    user = User(**user)
    user.company = Company(**company)
    return user


def authenticate(params, settings, max_age_seconds=None):
    """Check a signed call's `rand_str`, `timestamp` and `user_id`; return the calling user.

    `max_age_seconds` replaces the skew window for calls whose timestamp is an upload's id. Whether the
    signature was used before is services.calls' business (it is spent in the work's transaction)."""
    rand_str = params.get("rand_str") or ""
    timestamp = _parse_timestamp(params.get("timestamp"))
    user_id = _parse_user_id(params.get("user_id"))
    skew = settings["auth"]["max_skew_seconds"]
    age = time.time() - timestamp / 1000
    if age > (max_age_seconds or skew) or -age > skew:
        raise TokenError("时间戳已过期")
    user = _load_signer(user_id)
    if user is None or not hmac.compare_digest(sign(params["timestamp"], user.token), rand_str.lower()):
        raise TokenError()
    if user.status != USER_ENABLED:
        raise AccountDisabled()
    return user


def prune_used_signatures(settings):
    """Forget signatures too old to be accepted again (their timestamp is outside the skew window)."""
    oldest = int(1000 * (time.time() - settings["auth"]["max_skew_seconds"]))
    return UsedSignature.delete().where(UsedSignature.timestamp < oldest).execute()
