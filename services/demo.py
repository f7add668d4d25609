"""Demo data: one company with an administrator and two ordinary users, so a newcomer can log in."""
from models import (
    PRODUCT_COMPANY,
    PRODUCT_OFF_SHELF,
    PRODUCT_PERSONAL,
    PRODUCT_RECOMMENDED,
    ROLE_ADMIN,
    ROLE_USER,
    Product,
    User,
)
from services import products
from services.companies import get_or_create_company
from services.users import create_user

DEMO_COMPANY = "诸葛雷达演示公司"
DEMO_USERS = [
    # login name, display name, password, role, position
    ("admin", "管理员", "admin123", ROLE_ADMIN, "总经理"),
    ("zhangsan", "张三", "zhangsan123", ROLE_USER, "销售经理"),
    ("lisi", "李四", "lisi123", ROLE_USER, "销售顾问"),
]


DEMO_PRODUCTS = [
    # owner (index into DEMO_USERS), type, name, price, reason, status
    (0, PRODUCT_COMPANY, "雷达名片企业版", "9800元/年", "一张名片看清每一位客户", PRODUCT_RECOMMENDED),
    (0, PRODUCT_COMPANY, "雷达名片标准版", "3800元/年", "小团队的第一张智能名片", 1),
    (0, PRODUCT_COMPANY, "企业官网小程序", "5000元起", "名片里直接打开的官网", 1),
    (0, PRODUCT_COMPANY, "客户跟进培训课", "1200元/人", "两天学会用数据跟进客户", 1),
    (0, PRODUCT_COMPANY, "2018世界女排联赛入场票", "50-1380元", "一起度过美好时光!!", 1),
    (0, PRODUCT_COMPANY, "旧版名片套餐", "已停售", "老客户续费专用", PRODUCT_OFF_SHELF),
    (1, PRODUCT_PERSONAL, "张三推荐：年度团购套餐", "面议", "团购五张以上八折", 1),
    (1, PRODUCT_PERSONAL, "张三推荐：上门演示", "免费", "预约后两天内上门", 1),
    (1, PRODUCT_PERSONAL, "张三推荐：春节礼盒", "388元", "节前最后一批", PRODUCT_OFF_SHELF),
    (2, PRODUCT_PERSONAL, "李四推荐：试用一个月", "免费", "先用再买", 1),
    (2, PRODUCT_PERSONAL, "李四推荐：数据报表服务", "200元/月", "每周一份客户报表", 1),
    (2, PRODUCT_PERSONAL, "李四推荐：名片设计", "300元", "三天出稿", 1),
]


def _load_products(users):
    """The demo catalogue, each product with a title and two paragraphs in order; only into an empty one."""
    company_id = users[0].company_id
    if Product.select().where(Product.company == company_id).exists():
        return []
    for owner, product_type, name, price, reason, status in DEMO_PRODUCTS:
        articles = [{"title": name, "order": 1}, {"content": f"{reason}。", "order": 2},
                    {"content": f"价格：{price}，欢迎咨询。", "order": 3}]
        product = products.add_product(users[owner], {
            "product_type": product_type, "name": name, "price": price, "reason": reason,
            "cover_picture_id": [], "article_data": articles})
        if status != product.status:
            Product.update(status=status).where(Product.id == product.id).execute()
    return [f"  {len(DEMO_PRODUCTS)} demo products (company and personal) with articles"]


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
    return lines + _load_products(users)
