"""Picture files are removed in one place (services.pictures.delete_files): after the commit that deleted
their rows, and never while some picture row still names them, however many URLs one call gives."""
import models
from services import pictures

URL = "/statics/zhugeleida/imgs/admin/product/{}.jpg"


class RecordingStorage:
    """Storage that notes which files it was asked to remove."""

    def __init__(self):
        self.deleted = []

    def delete(self, url):
        self.deleted.append(url)


def test_a_file_still_named_by_a_row_is_kept_in_a_batch_of_any_size(company):
    named = [URL.format(f"named{n:05}") for n in range(1234)]  # several lookups' worth
    models.ProductPicture.insert_many([{"company": company.id, "url": url} for url in named]).execute()
    storage = RecordingStorage()
    pictures.delete_files(storage, [*named, URL.format("loose")])
    assert storage.deleted == [URL.format("loose")]
