"""The picture pipeline: check an uploaded file is a real image of an allowed format and size, turn it
upright, and re-encode it (and a thumbnail) with no metadata. Blocking: call it from the executor; the
Pillow work itself runs in a few image threads of its own.

Only the first frame of an animated GIF or WEBP is kept.
"""
import contextlib
import contextvars
import dataclasses
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageOps

from services.errors import invalid

# A decompression bomb is a refusal, never just a log line. Set once, process-wide (catch_warnings is not
# thread-safe and this runs in executor threads); _check_size refuses the same sizes in case a test runner
# or other code has reset the filters.
warnings.simplefilter("error", Image.DecompressionBombWarning)

# Pillow format -> (format to save as, extension). MPO is the multi-picture JPEG some cameras write.
FORMATS = {"JPEG": ("JPEG", "jpg"), "MPO": ("JPEG", "jpg"), "PNG": ("PNG", "png"), "GIF": ("GIF", "gif"),
           "WEBP": ("WEBP", "webp")}
OPENERS = ["JPEG", "PNG", "GIF", "WEBP"]  # the only decoders Pillow may try on an upload
EXTENSIONS = {"jpg", "jpeg", "png", "gif", "webp"}  # what an img_name may end with
SAVE_MODES = {"JPEG": ("RGB", "L"), "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"),
              "GIF": ("P", "L"), "WEBP": ("RGB", "RGBA")}
KEPT_INFO = ("transparency",)  # pixel meaning, not metadata: which palette entry is transparent
IMAGE_NICE = 10  # CPU niceness of the image threads

FIELD = "img_data"


def _is_lossless_webp(file):
    """True for a WEBP whose image is VP8L (lossless). Re-encoded lossy, such a file grew 2,000-fold (a
    464-byte 2000x2000 picture stored as 1 MB): storage amplification."""
    file.seek(0)
    header = file.read(4096)
    file.seek(0)
    if header[:4] != b"RIFF" or header[8:12] != b"WEBP":
        return False
    position = 12
    while position + 8 <= len(header):  # chunks: fourcc, little-endian size, data padded to even
        fourcc = header[position:position + 4]
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        size = int.from_bytes(header[position + 4:position + 8], "little")
        position += 8 + size + (size & 1)
    return False


@dataclasses.dataclass
class Picture:
    data: bytes
    thumbnail: bytes
    width: int
    height: int
    extension: str


def _lower_priority():
    """Image threads give way to the event loop and database work when the CPUs are busy."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), IMAGE_NICE)


_pool = None
_pool_lock = threading.Lock()


def _image_pool(threads):
    global _pool
    with _pool_lock:
        if _pool is None:  # made on first use, so after any fork
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="zgld-image", initializer=_lower_priority)
        return _pool


def process(file, max_pixels, thumbnail_px, quality, threads=2):
    """Check and re-encode the image in the binary file `file`; raise a 303 naming `img_data` if it is
    not an allowed, complete image within `max_pixels`. The work runs in `threads` image threads at a
    lower CPU priority: at most that many decoded images (tens of MB each) exist at once."""
    return submit(file, max_pixels, thumbnail_px, quality, threads).result()


def submit(file, max_pixels, thumbnail_px, quality, threads=2):
    """process() started in the image threads: a concurrent.futures.Future of its Picture, for callers
    that must not hold a thread while it runs (the event loop awaits it)."""
    # in a copy of the caller's context: a line logged while processing names the upload's request
    return _image_pool(threads).submit(contextvars.copy_context().run, _process, file, max_pixels, thumbnail_px,
                                       quality)


def queue_depth() -> int:
    """Pictures waiting for an image thread in this process (/metrics)."""
    return 0 if _pool is None else _pool._work_queue.qsize()


def _process(file, max_pixels, thumbnail_px, quality):
    lossless = _is_lossless_webp(file)
    image = _decode(file, max_pixels)
    save_as, extension = FORMATS[image.format]
    image = _upright_without_metadata(image)
    # The thumbnail is made beside the main encode: Pillow releases the GIL in both, so on two cores
    # the upload completes in about the time of a bare decode and re-encode. Both only read `image`.
    with ThreadPoolExecutor(1, thread_name_prefix="zgld-thumbnail", initializer=_lower_priority) as helper:
        thumbnail = helper.submit(lambda: _encode(_thumbnail(image, thumbnail_px), save_as, quality, lossless))
        data = _encode(image, save_as, quality, lossless)
        return Picture(data=data, thumbnail=thumbnail.result(), width=image.width, height=image.height,
                       extension=extension)


def _decode(file, max_pixels):
    try:
        with Image.open(file, formats=OPENERS) as probe:
            _check_size(probe, max_pixels)
            probe.verify()  # structure and checksums (PNG CRCs), without decoding pixels
        file.seek(0)
        image = Image.open(file, formats=OPENERS)
        _check_size(image, max_pixels)
        image.load()  # decodes everything: a truncated file fails here
        return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise invalid(FIELD, "图片像素过多") from None
    except Image.UnidentifiedImageError:
        raise invalid(FIELD, "不是支持的图片格式（JPEG、PNG、GIF、WEBP）") from None
    except Exception:  # Pillow's decoders raise many kinds of errors on malformed input
        raise invalid(FIELD, "图片文件已损坏或不完整") from None


def _check_size(image, max_pixels):
    if image.format not in FORMATS:
        raise Image.UnidentifiedImageError()
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)  # Pillow warns above its own limit
    if image.width * image.height > limit or not image.width or not image.height:
        raise Image.DecompressionBombError()


def _upright_without_metadata(image):
    """Apply the EXIF orientation, then drop every piece of metadata (EXIF, GPS, comments, ICC profiles,
    text chunks) so that none can be carried into the saved file."""
    with contextlib.suppress(Exception):  # unreadable EXIF: keep the pixels as they are
        ImageOps.exif_transpose(image, in_place=True)
    image.info = {key: image.info[key] for key in KEPT_INFO if key in image.info}
    return image


def _thumbnail(image, long_side):
    scale = long_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: shrink by an integer factor first (fast), then resample the last step properly
    thumbnail = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    thumbnail.info = dict(image.info)
    return thumbnail


def _encode(image, save_as, quality, lossless=False):
    if image.mode not in SAVE_MODES[save_as]:
        has_alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha and save_as != "JPEG" else "RGB")
        image.info = {}
    options = {"quality": quality} if save_as in ("JPEG", "WEBP") else {}
    if lossless:  # PNG and GIF are lossless anyway; a lossless WEBP stays lossless
        options = {"lossless": True}
    with _scratch_file() as out:
        image.save(out, save_as, **options)
        out.seek(0)
        return out.read()


def _scratch_file():
    """An anonymous file with a descriptor of its own (in memory where Linux offers it). Pillow encodes into
    such a file in C with the GIL released; into a BytesIO it holds the GIL while it encodes each 64 KB of
    output, and with pictures completing, a small GET on the event loop waited 100-250 ms for it."""
    with contextlib.suppress(AttributeError, OSError):  # no memfd_create: a temporary file on disk
        return open(os.memfd_create("zgld-picture"), "w+b")  # noqa: SIM115 - the caller closes it
    return tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
