"""Demo data: one company with an administrator and two ordinary users, so a newcomer can log in."""
import datetime
import io
import random

from PIL import Image, ImageDraw

from models import (
    PICTURE_COVER,
    PRODUCT_COMPANY,
    PRODUCT_OFF_SHELF,
    PRODUCT_PERSONAL,
    PRODUCT_RECOMMENDED,
    ROLE_ADMIN,
    ROLE_USER,
    Customer,
    Product,
    User,
)
from services import activity, clock, images, pictures, products, stats
from services.companies import get_or_create_company
from services.users import create_user
from storage import make_storage

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


DEMO_CUSTOMER_NAMES = ["王先生", "李女士", "赵总", "陈经理", "刘老师", "周小姐", "吴工", "孙总监"]


COVER_COLOURS = [((29, 78, 216), (96, 165, 250)), ((190, 24, 93), (251, 146, 60)), ((4, 120, 87), (52, 211, 153)),
                 ((109, 40, 217), (196, 181, 253)), ((180, 83, 9), (253, 224, 71)), ((15, 23, 42), (100, 116, 139))]


def _cover_png(rng, top, bottom, size=(800, 600)):
    """A made-up cover: a vertical gradient with a few translucent circles."""
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image, "RGBA")
    for y in range(size[1]):
        t = y / (size[1] - 1)
        draw.line([(0, y), (size[0], y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    for _ in range(5):
        x, y, r = rng.randint(0, size[0]), rng.randint(0, size[1]), rng.randint(40, 220)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255, rng.randint(25, 70)))
    out = io.BytesIO()
    image.save(out, "PNG")
    out.seek(0)
    return out


def _demo_cover(storage, settings, user, rng, index):
    """A cover picture for a demo product, through the same pipeline as an upload; its id."""
    limits = settings["upload"]
    picture = images.process(_cover_png(rng, *COVER_COLOURS[index % len(COVER_COLOURS)]), limits["max_pixels"],
                             limits["thumbnail_px"], limits["jpeg_quality"], limits["image_threads"])
    return pictures.store_picture(storage, user, PICTURE_COVER, picture).id


def _load_products(users, settings):
    """The demo catalogue, each product with a cover, a title and two paragraphs in order; only into an
    empty one."""
    company_id = users[0].company_id
    if Product.select().where(Product.company == company_id).exists():
        return []
    storage, rng = make_storage(settings), random.Random(12)
    for index, (owner, product_type, name, price, reason, status) in enumerate(DEMO_PRODUCTS):
        articles = [{"title": name, "order": 1}, {"content": f"{reason}。", "order": 2},
                    {"content": f"价格：{price}，欢迎咨询。", "order": 3}]
        cover = _demo_cover(storage, settings, users[owner], rng, index)
        product = products.add_product(users[owner], products.ADD.validate({
            "product_type": product_type, "name": name, "price": price, "reason": reason,
            "cover_picture_id": [cover], "article_data": articles}))
        if status != product.status:
            Product.update(status=status).where(Product.id == product.id).execute()
    return [f"  {len(DEMO_PRODUCTS)} demo products (company and personal) with covers and articles"]


def _demo_day(rng, user_id, day, busy, customers):
    """(local time of day, record) for one user's day: new customers, their visits, now and then a
    forward, a save, a praise or a follow-up."""
    def record(kind, openid, **extra):
        return datetime.time(rng.randint(8, 21), rng.randint(0, 59)), {
            "kind": kind, "user_id": user_id, "openid": openid, **extra}

    day_records = []
    for _ in range(rng.randint(0, round(3 * busy))):
        customers.append(f"demo-{user_id}-{len(customers)}")
        day_records.append(record("binding", customers[-1], name=rng.choice(DEMO_CUSTOMER_NAMES),
                                  source=rng.choice((1, 1, 2))))
    for openid in rng.sample(customers, min(len(customers), round(6 * busy))):
        day_records += [record("access", openid, action=1), record("access", openid, action=rng.randint(1, 12))]
        if rng.random() < 0.25:
            day_records.append(record("access", openid, action=rng.choice((6, 8, 9, 9))))
        if rng.random() < 0.1:
            day_records.append(record("follow_up", openid, content="电话回访，客户有意向"))
    return day_records


def _load_activity(users, settings, days=90):
    """90 days of customer activity on the users' cards, busier on weekdays and growing, so the
    dashboard shows curves; only into a company without customers. Seeded: the same every time."""
    if Customer.select().where(Customer.company == users[0].company_id).exists():
        return []
    rng = random.Random(90)
    tz, now = clock.zone(settings), clock.now()
    today = now.astimezone(tz).date()
    records, customers = [], {user.id: [] for user in users}
    for back in range(days, -1, -1):
        day = today - datetime.timedelta(days=back)
        busy = (0.5 if day.weekday() >= 5 else 1.0) * (1 + (days - back) / days)
        for user in users:
            for time_of_day, record in _demo_day(rng, user.id, day, busy, customers[user.id]):
                at = datetime.datetime.combine(day, time_of_day, tz)
                if at <= now:
                    records.append({**record, "time": at.isoformat()})
    records.sort(key=lambda r: r["time"])  # a customer's binding before its visits
    for start in range(0, len(records), activity.MAX_BATCH):
        activity.store_records(None, records[start:start + activity.MAX_BATCH], settings)
    stats.rollup_if_due(settings)
    return [f"  {len(records)} demo activity records over {days} days"]


def load(settings):
    """Create the demo company, its users and their data (once); return lines to print."""
    company = get_or_create_company(DEMO_COMPANY, settings, quota=20)
    lines = [f"demo company: {company.name} (id {company.id})"]
    users = []
    for login_name, username, password, role_id, position in DEMO_USERS:
        user = User.get_or_none(User.login_name == login_name)
        if user is None:
            user = create_user(company.id, role_id, login_name, username, password, settings["auth"]["scrypt_n"],
                               position=position)
        users.append(user)
        lines.append(f"  login {login_name:10} password {password:12} ({username}, role {role_id})")
    return lines + _load_products(users, settings) + _load_activity(users, settings)
