"""The request log line: cheap (buffered, formatted once), yet a WARNING is written at once and the rest
within a flush."""
import logging

import server


def test_warnings_are_written_at_once_and_info_lines_at_the_next_flush(tmp_path):
    path = tmp_path / "log"
    with open(path, "w", buffering=1 << 16) as stream:
        handler = server.BufferedLineHandler(stream)
        handler.setFormatter(server.LineFormatter())
        logger = logging.getLogger("zgld.test-log-line")
        logger.propagate, logger.level = False, logging.INFO
        logger.addHandler(handler)
        try:
            logger.info("request_id=abc GET /x status=200")
            assert path.read_text() == ""  # still in the buffer: no system call per line
            logger.warning("something to see now")
            lines = path.read_text().splitlines()
            assert [line.split(" ", 2)[2] for line in lines] == [
                "INFO zgld.test-log-line request_id=abc GET /x status=200",
                "WARNING zgld.test-log-line something to see now"]
            logger.info("later")
            handler.flush()
            assert path.read_text().splitlines()[-1].endswith("INFO zgld.test-log-line later")
        finally:
            logger.removeHandler(handler)


def test_line_format_keeps_time_with_milliseconds_and_tracebacks():
    formatter = server.LineFormatter()
    try:
        raise ValueError("boom")
    except ValueError as e:
        record = logging.LogRecord("zgld", logging.ERROR, "", 0, "failed %s", ("here",), (type(e), e, e.__traceback__))
    line = formatter.format(record)
    stamp = line.split(" ERROR ")[0]
    assert len(stamp) == len("2026-12-01 03:56:10,166") and stamp[-4] == ","
    assert " ERROR zgld failed here\nTraceback" in line and "ValueError: boom" in line
