"""Who may call what, and which company a caller may reach: the one place for both rules (docs/api.md 1.9).

Every handler declares its `access`: PUBLIC (no signature), MEMBER (any enabled user, signed) or ADMIN
(administrators; anyone else gets 404 `非法请求`, after the signature check). A call naming a company with
`company_id` gets its company from company_for(): an administrator may name any company that exists; an
ordinary user only their own, since another company does not exist for them (302 `公司不存在`, as for an
id that does not exist). Whether a given row belongs to the caller's company stays with the service that
reads it (services.records.visible_row).
"""
from typing import Final

from models import Company, User
from services.errors import Forbidden, NotFound

PUBLIC: Final = "public"
MEMBER: Final = "member"
ADMIN: Final = "admin"
ACCESS_LEVELS: Final = (PUBLIC, MEMBER, ADMIN)

NO_SUCH_COMPANY: Final = "公司不存在"


def check_access(access: str, caller: User) -> None:
    """Refuse (404) a signed caller the handler's declared access does not admit."""
    if access not in ACCESS_LEVELS or access == ADMIN and not caller.is_admin:  # undeclared: denied
        raise Forbidden()


def limited_to(caller: User) -> int | None:
    """The one company an ordinary caller sees and acts in; None for an administrator, who reaches all."""
    return None if caller.is_admin else caller.company_id


def company_for(caller: User, company_id: int | None) -> Company:
    """The company a call is about: the caller's own when none is named (loaded with the caller, so no
    query); an administrator may name any company that exists; anything else answers 302 `公司不存在`."""
    if company_id is None or company_id == caller.company_id:
        return caller.company
    company = Company.get_or_none(Company.id == company_id) if limited_to(caller) is None else None
    if company is None:
        raise NotFound(NO_SUCH_COMPANY)
    return company


def list_company_for(caller: User, company_id: int | None) -> int | None:
    """The company a list is limited to, as company_for(), except that an administrator naming none sees
    every company's rows (None)."""
    if company_id is None and limited_to(caller) is None:
        return None
    return company_for(caller, company_id).id
