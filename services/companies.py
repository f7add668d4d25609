"""Companies."""
import datetime

from models import Company, db


def get_or_create_company(name, quota=10, valid_days=365):
    """The company called `name`, created with `quota` cards valid `valid_days` if it does not exist."""
    with db.atomic():
        company = Company.get_or_none(Company.name == name)
        if company is None:
            company = Company.create(name=name, mingpian_available_num=quota,
                                     expire_date=datetime.date.today() + datetime.timedelta(days=valid_days))
    return company
