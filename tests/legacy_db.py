"""The old system's MySQL tables (as Django 1.11 created them), for the import tests and its benchmark.

Foreign keys are plain indexed columns without constraints: the old database did not always keep them
consistent, and the tests need rows that point at missing rows.
"""
import os
import urllib.parse

import pymysql

# not ZGLD_...: those name settings, and the service refuses unknown ones
OLD_SERVER = os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")

DDL = [
    """CREATE TABLE zhugeleida_zgld_company (
        id int AUTO_INCREMENT PRIMARY KEY, name varchar(128) NOT NULL, area varchar(128) NULL,
        address longtext NOT NULL, corp_id varchar(128) NOT NULL, tongxunlu_secret varchar(256) NOT NULL,
        website_content longtext NOT NULL, mingpian_available_num smallint NOT NULL,
        user_expired datetime(6) NULL, create_date datetime(6) NOT NULL)""",
    """CREATE TABLE zhugeleida_zgld_role (
        id int AUTO_INCREMENT PRIMARY KEY, name varchar(32) NOT NULL, create_date datetime(6) NOT NULL)""",
    """CREATE TABLE zhugeleida_zgld_userprofile (
        id int AUTO_INCREMENT PRIMARY KEY, userid varchar(64) NOT NULL, name varchar(32) NOT NULL,
        password varchar(32) NULL, username varchar(32) NOT NULL, gender smallint NOT NULL,
        company_id int NOT NULL, position varchar(128) NOT NULL, role_id int NOT NULL,
        telephone varchar(20) NULL, wechat_phone varchar(20) NULL, wechat varchar(64) NULL,
        email varchar(254) NULL, mingpian_phone varchar(20) NULL, is_show_phone tinyint(1) NOT NULL,
        token varchar(32) NULL, avatar varchar(128) NOT NULL, qr_code varchar(128) NULL,
        status smallint NOT NULL, popularity int NOT NULL, praise int NOT NULL, forward int NOT NULL,
        create_date datetime(6) NOT NULL, last_login_date datetime(6) NULL,
        KEY (company_id), KEY (role_id))""",
    """CREATE TABLE zhugeleida_zgld_product (
        id int AUTO_INCREMENT PRIMARY KEY, status smallint NOT NULL, user_id int NULL, company_id int NULL,
        name varchar(128) NULL, price varchar(64) NULL, reason varchar(256) NULL,
        create_date datetime(6) NOT NULL, KEY (user_id), KEY (company_id))""",
    """CREATE TABLE zhugeleida_zgld_product_article (
        id int AUTO_INCREMENT PRIMARY KEY, product_id int NULL, type smallint NULL, `order` smallint NULL,
        title varchar(64) NULL, content longtext NULL, create_date datetime(6) NOT NULL, KEY (product_id))""",
    """CREATE TABLE zhugeleida_zgld_product_picture (
        id int AUTO_INCREMENT PRIMARY KEY, `order` smallint NULL, product_id int NULL, picture_type smallint NULL,
        picture_url varchar(256) NULL, create_date datetime(6) NOT NULL, KEY (product_id))""",
    """CREATE TABLE zhugeleida_zgld_customer (
        id int AUTO_INCREMENT PRIMARY KEY, username varchar(64) NULL, openid varchar(64) NOT NULL,
        user_type smallint NOT NULL, nickname varchar(64) NULL, country varchar(64) NULL, city varchar(64) NULL,
        province varchar(64) NULL, language varchar(64) NULL, headimgurl varchar(128) NOT NULL,
        create_date datetime(6) NOT NULL)""",
    """CREATE TABLE zhugeleida_zgld_user_customer_belonger (
        id int AUTO_INCREMENT PRIMARY KEY, user_id int NULL, customer_id int NULL, source smallint NOT NULL,
        customer_parent_id int NULL, create_date datetime(6) NOT NULL,
        KEY (user_id), KEY (customer_id), KEY (customer_parent_id))""",
    """CREATE TABLE zhugeleida_zgld_user_customer_flowup (
        id int AUTO_INCREMENT PRIMARY KEY, user_id int NULL, customer_id int NULL,
        last_follow_time datetime(6) NULL, last_activity_time datetime(6) NULL, create_date datetime(6) NOT NULL,
        KEY (user_id), KEY (customer_id))""",
    """CREATE TABLE zhugeleida_zgld_follow_info (
        id int AUTO_INCREMENT PRIMARY KEY, user_customer_flowup_id int NOT NULL, follow_info varchar(256) NULL,
        create_date datetime(6) NOT NULL, KEY (user_customer_flowup_id))""",
    """CREATE TABLE zhugeleida_zgld_accesslog (
        id int AUTO_INCREMENT PRIMARY KEY, action smallint NOT NULL, user_id int NOT NULL, customer_id int NOT NULL,
        remark longtext NOT NULL, activity_time_id int NULL, is_new_msg tinyint(1) NOT NULL,
        create_date datetime(6) NOT NULL, KEY (user_id), KEY (customer_id), KEY (activity_time_id))""",
]

# Columns filled by the helpers below, per table (the others get a fixed value in DEFAULTS).
DEFAULTS = {
    "zgld_company": {"area": None, "address": "", "website_content": ""},
    "zgld_userprofile": {"userid": "", "name": "", "gender": 1, "telephone": None, "wechat_phone": None,
                         "wechat": None, "email": None, "is_show_phone": 1, "qr_code": None, "popularity": 0,
                         "praise": 0, "forward": 0},
    "zgld_customer": {"user_type": 1, "country": None, "city": None, "province": None, "language": None,
                      "headimgurl": ""},
    "zgld_user_customer_belonger": {"customer_parent_id": None},
    "zgld_user_customer_flowup": {"last_follow_time": None, "last_activity_time": None},
    "zgld_accesslog": {"remark": "", "activity_time_id": None, "is_new_msg": 1},
}


def server_arguments():
    parts = urllib.parse.urlsplit(OLD_SERVER)
    return {"host": parts.hostname, "port": parts.port or 3306, "user": urllib.parse.unquote(parts.username or ""),
            "password": urllib.parse.unquote(parts.password or "")}


def database_url(name):
    a = server_arguments()
    password = f":{urllib.parse.quote(a['password'])}" if a["password"] else ""
    return f"mysql://{urllib.parse.quote(a['user'])}{password}@{a['host']}:{a['port']}/{name}"


def connect(database=None, **extra):
    return pymysql.connect(**server_arguments(), database=database, charset="utf8mb4", autocommit=True, **extra)


def create(name):
    """A fresh old database `name` with every table, empty; returns a connection to it."""
    with connect() as server, server.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    connection = connect(name, local_infile=True)
    with connection.cursor() as cursor:
        for statement in DDL:
            cursor.execute(statement)
    return connection


def drop(name):
    with connect() as server, server.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def insert(connection, table, rows):
    """Insert dicts into zhugeleida_<table>, the columns not given taken from DEFAULTS."""
    if not rows:
        return
    rows = [{**DEFAULTS.get(table, {}), **row} for row in rows]
    columns = list(rows[0])
    names = ", ".join(f"`{c}`" for c in columns)
    group = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            chunk = rows[start:start + 1000]
            cursor.execute(f"INSERT INTO zhugeleida_{table} ({names}) VALUES {', '.join([group] * len(chunk))}",
                           [row[c] for row in chunk for c in columns])
