"""Demo data: one company with an administrator and two ordinary users, so a newcomer can log in."""
from models import ROLE_ADMIN, ROLE_USER, User
from services.companies import get_or_create_company
from services.users import create_user

DEMO_COMPANY = "诸葛雷达演示公司"
DEMO_USERS = [
    # login name, display name, password, role, position
    ("admin", "管理员", "admin123", ROLE_ADMIN, "总经理"),
    ("zhangsan", "张三", "zhangsan123", ROLE_USER, "销售经理"),
    ("lisi", "李四", "lisi123", ROLE_USER, "销售顾问"),
]


def load(settings):
    """Create the demo company, its users and their data (once); return lines to print."""
    company = get_or_create_company(DEMO_COMPANY, quota=20)
    lines = [f"demo company: {company.name} (id {company.id})"]
    users = []
    for login_name, username, password, role_id, position in DEMO_USERS:
        user = User.get_or_none(User.login_name == login_name)
        if user is None:
            user = create_user(company.id, role_id, login_name, username, password, settings["auth"]["scrypt_n"],
                               position=position)
        users.append(user)
        lines.append(f"  login {login_name:10} password {password:12} ({username}, role {role_id})")
    return lines
