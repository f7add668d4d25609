"""Incremental decoders for a picture chunk's request body, fed piece by piece as it arrives.

Each decoder's feed(data) returns the chunk bytes decoded so far (possibly b"") and keeps at most a few
bytes (or one multipart header block) between calls, so memory stays bounded whatever the chunk size.
finish() returns what is left and checks the body was complete. Bad input raises a 303 for `img_data`.

Bodies: raw bytes (application/octet-stream or any other type); base64 text in the form field `img_data`,
urlencoded or multipart (a multipart `img_data` part with a filename carries raw bytes). A form's other
fields (old clients send `img_name`, `timestamp`, `chunk` there, before or after `img_data`) are kept in
`fields`, text by name (the last of a repeated name), at most FORM_OVERHEAD bytes of them in all.
"""
import binascii
import email.message
import math
import urllib.parse

from services.errors import TooLarge, invalid

FIELD = "img_data"
FORM_OVERHEAD = 64 * 1024  # room for other small form fields and multipart headers
MAX_KEY_BYTES = 256
MAX_PART_HEADER_BYTES = 8 * 1024
# Each field costs a few Python steps on the event loop whatever its size: a body of nothing but '&' cost
# 1.2 us of loop CPU per byte (0.6 s for 512 KB). Clients send fewer than 10 fields, so past this many the
# body is refused, and the work per byte stays that of C-level scans.
MAX_FIELDS = 256


def bad_data(message):
    return invalid(FIELD, message)


def _count_field(count):
    if count > MAX_FIELDS:
        raise bad_data(f"表单字段过多（上限 {MAX_FIELDS} 个）")
    return count


class FormFields:
    """The small fields of a form body beside img_data, gathered piece by piece within a byte budget."""

    def __init__(self):
        self._values = {}
        self._bytes = 0

    def start(self, name):
        self._count(len(name))
        self._values[name] = bytearray()  # a repeated name: the last one counts, as in a query string
        self._current = self._values[name]

    def _count(self, size):
        self._bytes += size
        if self._bytes > FORM_OVERHEAD:
            raise TooLarge(f"img_data 以外的表单字段超过 {FORM_OVERHEAD} 字节")

    def add(self, piece):
        self._count(len(piece))
        self._current += piece

    def text(self, decode):
        return {name: decode(bytes(value)) for name, value in self._values.items()}


class RawDecoder:
    fields = None  # a raw body carries no fields: they are all in the query

    def feed(self, data):
        return data

    def finish(self):
        return b""

    @staticmethod
    def max_body(max_chunk_bytes):
        return max_chunk_bytes + FORM_OVERHEAD


class Base64Decoder:
    """Base64 text to bytes, 4 characters at a time; whitespace (line breaks) ignored, and a leading
    data-URL prefix ('data:image/png;base64,') as browsers make it is skipped."""

    def __init__(self):
        self._pending = b""
        self._started = False
        self._padded = False

    def feed(self, text):
        if b"\n" in text or b" " in text or b"\r" in text or b"\t" in text:  # scans are cheaper than a copy
            text = text.translate(None, b" \t\r\n")
        text = self._pending + text if self._pending else text
        if not self._started:
            if text[:5].lower() == b"data:":
                comma = text.find(b",")
                if comma < 0:
                    if len(text) > 256:
                        raise bad_data("不是合法的 base64 文本")
                    self._pending = text
                    return b""
                text = text[comma + 1:]
            elif len(text) < 5:
                self._pending = text
                return b""
            self._started = True
        usable = len(text) // 4 * 4
        self._pending = text[usable:]
        return self._decode(text[:usable])

    def _decode(self, text):
        if not text:
            return b""
        if self._padded or b"=" in text.rstrip(b"="):
            raise bad_data("base64 文本在结尾的 = 之后还有内容")
        try:
            data = binascii.a2b_base64(text, strict_mode=True)
        except binascii.Error:
            raise bad_data("不是合法的 base64 文本") from None
        self._padded = text.endswith(b"=")
        return data

    def finish(self):
        self._started = True
        if len(self._pending) % 4:
            raise bad_data("base64 文本长度不完整")
        data, self._pending = self._decode(self._pending), b""
        return data

    @staticmethod
    def max_body(max_chunk_bytes):
        """Base64 text of the largest chunk, with a line break every 76 characters."""
        text = math.ceil(max_chunk_bytes / 3) * 4
        return text + 2 * math.ceil(text / 76) + FORM_OVERHEAD


# Every escape that can stand for a character of base64 text (the alphabet, '=' and whitespace, and a
# browser's 'data:image/png;base64,' prefix), in both cases of hex digit. Replacing them costs C-level scans
# per piece: urllib's unquote loops in Python per escape (0.07 us per byte of loop CPU, about 1 s for the
# largest urlencoded chunk; the table takes 0.04).
_BASE64_TEXT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\r\n:;,-._"
_ESCAPES = sorted({(spelling, bytes([c])) for c in _BASE64_TEXT
                   for spelling in (b"%%%02X" % c, b"%%%02x" % c, b"%%%X%x" % (c >> 4, c & 15),
                                    b"%%%x%X" % (c >> 4, c & 15))})


def _unescape_base64(piece):
    for escape, char in _ESCAPES:
        if b"%" not in piece:
            break
        piece = piece.replace(escape, char)
    if b"%" in piece:  # an escape of something base64 text cannot hold
        raise bad_data("不是合法的 base64 文本")
    return piece


class UrlencodedDecoder:
    """`a=1&img_data=<percent-encoded base64>&b=2`: the value of img_data goes through percent-decoding
    and the base64 decoder; other fields are skipped."""

    def __init__(self):
        self._inner = Base64Decoder()
        self._key = b""
        self._in_value = False
        self._is_target = False
        self._found = False
        self._escape = b""  # the start of a %XX split across two pieces
        self._others = FormFields()
        self._fields = 0

    def feed(self, data):
        out = []
        position = 0
        while position < len(data):
            if not self._in_value:
                position = self._read_key(data, position)
                continue
            end = data.find(b"&", position)
            stop = len(data) if end < 0 else end
            if self._is_target:
                out.append(self._inner.feed(self._unquote(data[position:stop])))
            else:
                self._others.add(data[position:stop])
            if end < 0:
                break
            self._end_value()
            position = end + 1
        return b"".join(out)

    def _read_key(self, data, position):
        ends = [i for i in (data.find(b"=", position), data.find(b"&", position)) if i >= 0]
        end = min(ends) if ends else len(data)
        self._key += data[position:end]
        if len(self._key) > MAX_KEY_BYTES:
            raise bad_data("表单字段名过长")
        if end == len(data):
            return end
        self._fields = _count_field(self._fields + 1)
        name = urllib.parse.unquote_plus(self._key.decode("latin-1"))
        if data[end:end + 1] == b"=":
            if name == FIELD and self._found:
                raise bad_data("img_data 只能有一个")
            self._in_value, self._is_target = True, name == FIELD
            self._found = self._found or self._is_target
        if not self._is_target:
            self._others.start(name)
        self._key = b""
        return end + 1

    def _end_value(self):
        if self._is_target and self._escape:
            raise bad_data("不完整的 % 转义")
        self._in_value = self._is_target = False

    def _unquote(self, piece):
        if self._escape:
            piece = self._escape + piece
        percent = piece.rfind(b"%", max(0, len(piece) - 2))
        if percent >= 0:
            piece, self._escape = piece[:percent], piece[percent:]
        else:
            self._escape = b""
        if b"%" not in piece:
            return piece  # a literal '+' stays '+': base64 has no spaces, clients that skip quoting send it
        # the three escapes base64 needs, as clients write them; anything else takes the table
        fast = piece.replace(b"%2B", b"+").replace(b"%2F", b"/").replace(b"%3D", b"=")
        return fast if b"%" not in fast else _unescape_base64(fast)

    @property
    def fields(self):
        return self._others.text(lambda value: urllib.parse.unquote_to_bytes(value.replace(b"+", b" "))
                                 .decode("utf-8", "replace"))

    def finish(self):
        if self._in_value:
            self._end_value()
        if not self._found:
            raise invalid(FIELD, "该字段是必填项")
        return self._inner.finish()

    @staticmethod
    def max_body(max_chunk_bytes):
        """Percent-encoding can triple the base64 text (in practice it adds about 6 %)."""
        return 3 * Base64Decoder.max_body(max_chunk_bytes)


class MultipartDecoder:
    """multipart/form-data: the `img_data` part's content, base64 text (or raw bytes if the part has a
    filename); other parts are skipped. The delimiter may be split across pieces, so the last
    len(delimiter) bytes of a piece wait for the next one."""

    def __init__(self, boundary):
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray(b"\r\n")  # the first delimiter has no line break before it
        self._state = "preamble"
        self._inner = None
        self._found = False
        self._others = FormFields()
        self._other_part = False
        self._parts = 0

    @property
    def fields(self):
        return self._others.text(lambda value: value.decode("utf-8", "replace"))

    def feed(self, data):
        self._buffer += data
        out = []
        while True:
            step = getattr(self, "_" + self._state)()
            if step is None:
                return b"".join(out)
            out.append(step)

    def _preamble(self):
        found = self._buffer.find(self._delimiter)
        if found < 0:
            del self._buffer[:max(0, len(self._buffer) - len(self._delimiter))]
            return None
        del self._buffer[:found + len(self._delimiter)]
        self._state = "after_delimiter"
        return b""

    def _after_delimiter(self):
        if len(self._buffer) < 2:
            return None
        ending = bytes(self._buffer[:2])
        if ending == b"--":
            self._state = "epilogue"
        elif ending == b"\r\n":
            del self._buffer[:2]
            self._state = "headers"
        else:
            raise bad_data("multipart 格式错误")
        return b""

    def _headers(self):
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_PART_HEADER_BYTES:
                raise bad_data("multipart 分段头过长")
            return None
        self._parts = _count_field(self._parts + 1)
        message = email.message.Message()
        for line in bytes(self._buffer[:end]).decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            message[name.strip()] = value.strip()
        del self._buffer[:end + 4]
        is_target = message.get_param("name", header="content-disposition") == FIELD
        if is_target and self._found:
            raise bad_data("img_data 只能有一个")
        self._found = self._found or is_target
        has_filename = message.get_param("filename", header="content-disposition") is not None
        self._inner = (RawDecoder() if has_filename else Base64Decoder()) if is_target else None
        field = message.get_param("name", header="content-disposition")  # a tuple when sent as name*=
        self._other_part = not is_target and not has_filename and isinstance(field, str)
        if self._other_part:
            self._others.start(field)
        self._state = "content"
        return b""

    def _content(self):
        found = self._buffer.find(self._delimiter)
        keep = len(self._buffer) - len(self._delimiter) + 1 if found < 0 else found
        if found < 0 and keep <= 0:
            return None
        piece = bytes(self._buffer[:keep])
        del self._buffer[:keep]
        out = self._inner.feed(piece) if self._inner else b""
        if self._other_part:
            self._others.add(piece)
        if found >= 0:
            del self._buffer[:len(self._delimiter)]
            if self._inner:
                out += self._inner.finish()
            self._inner = None
            self._state = "after_delimiter"
        return out

    def _epilogue(self):
        self._buffer.clear()
        return None

    def finish(self):
        if self._state != "epilogue":
            raise bad_data("multipart 内容不完整")
        if not self._found:
            raise invalid(FIELD, "该字段是必填项")
        return b""

    max_body = staticmethod(Base64Decoder.max_body)


def decoder_for(content_type):
    """The decoder for a request's Content-Type header."""
    message = email.message.Message()
    message["content-type"] = content_type or "application/octet-stream"
    kind = message.get_content_type()
    if kind == "application/x-www-form-urlencoded":
        return UrlencodedDecoder()
    if kind == "multipart/form-data":
        boundary = message.get_param("boundary")
        # an RFC 2231 boundary*= comes back as a tuple; no client sends one, and Tornado's parser refuses it
        if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
            raise bad_data("multipart 缺少 boundary")
        return MultipartDecoder(boundary.encode("latin-1", "replace"))
    return RawDecoder()
