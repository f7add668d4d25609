"""Service errors: each carries the envelope code and message the handler answers with."""


class ServiceError(Exception):
    code = 500
    msg = "服务器错误"
    http_status = 200  # existing clients read the envelope's code; a few answers also say it in HTTP

    def __init__(self, msg=None, data=None):
        super().__init__(msg or self.msg)
        self.msg = msg or self.msg
        self.data = data if data is not None else {}


class TokenError(ServiceError):
    code, msg = 400, "token异常"


class NameExists(ServiceError):
    code, msg = 300, "名称已存在"


class WrongType(ServiceError):
    code, msg = 301, "数据类型验证失败"


class NotFound(ServiceError):
    code, msg = 302, "对应ID不存在"


class FormInvalid(ServiceError):
    """`data` maps each bad field to a list of messages."""
    code, msg = 303, "form 验证错误"


class HasChildren(ServiceError):
    code, msg = 304, "含有子级数据,请先删除或转移子级数据"


class NotOnSelf(ServiceError):
    code, msg = 305, "不允许对自己操作"


class AccountDisabled(ServiceError):
    code, msg = 306, "账户未启用"


class BadLogin(ServiceError):
    code, msg = 401, "账号密码错误"


class Throttled(BadLogin):
    """Too many attempts from one client address (login, password resets): refused unchecked."""
    msg = "登录失败次数过多，请稍后再试"


class BadMethod(ServiceError):
    code, msg = 402, "请求方式异常"


class Forbidden(ServiceError):
    code, msg = 404, "非法请求"


class TooLarge(ServiceError):
    code, msg, http_status = 413, "请求数据过大", 413


def invalid(field, message):
    """A 303 for one field."""
    return FormInvalid(data={field: [message]})


# ---- faults the client should retry (HTTP 5xx as well, so proxies and monitoring see them) ----

class Busy(ServiceError):
    """The database stayed locked by another writer for longer than database.busy_timeout_ms."""
    code, msg, http_status = 503, "服务繁忙，请稍后重试", 503


class Stopping(ServiceError):
    """The service is stopping and this call was cut off before its work committed: nothing was done."""
    code, msg, http_status = 503, "服务正在停止，请稍后重试", 503


class StorageFull(ServiceError):
    """The disk holding the database or the pictures is full: nothing was written."""
    code, msg, http_status = 507, "存储空间不足", 507
