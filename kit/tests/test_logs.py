"""Personal data never reaches a log line, however it gets there."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ketenbus.kit.logs import bound, configure_logging, get_logger, log_context, mask

NAME, PHONE, EMAIL = "Jan de Vries", "06-12345678", "jan.devries@example.org"


@pytest.fixture
def lines():
    output = io.StringIO()
    configure_logging("kit-test", "DEBUG", stream=output)

    def read() -> list[dict]:
        return [json.loads(line) for line in output.getvalue().splitlines() if line]

    yield read
    logging.getLogger().handlers.clear()


def test_personal_fields_are_redacted_and_values_masked(lines):
    log = get_logger("test")
    with log_context(correlation_id="c-1"):
        log.info("referral received", name=NAME, phone=PHONE, note=f"call {PHONE} or {EMAIL}")

    [line] = lines()
    text = json.dumps(line)
    assert NAME not in text and PHONE not in text and EMAIL not in text
    assert line["name"] == "<redacted>"
    assert line["note"] == "call <phone> or <email>"
    assert line["correlation_id"] == "c-1"
    assert line["service"] == "kit-test"


def test_library_logs_and_tracebacks_are_filtered_too(lines):
    try:
        raise ValueError(f"could not reach {EMAIL} at 3511 AB, born 1988-04-12")
    except ValueError:
        logging.getLogger("some.library").exception("delivery failed for %s", PHONE)

    [line] = lines()
    text = json.dumps(line)
    assert EMAIL not in text and PHONE not in text and "3511 AB" not in text
    assert "1988-04-12" not in text
    assert "ValueError" in line["exception"]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("+31 6 12345678", "<phone>"),
        ("0612345678", "<phone>"),
        ("030-1234567", "<phone>"),
        ("3511AB", "<postcode>"),
        ("12-04-1988", "<date>"),
        ("event cl_3f2a1234ab5678cd", "event cl_3f2a1234ab5678cd"),
        ("2026-11-22T23:01:10Z", "2026-11-22T23:01:10Z"),
    ],
)
def test_masks_recognise_dutch_formats_and_leave_references_alone(text, masked):
    assert mask(text) == masked


def test_an_events_context_is_bound_for_its_work_and_gone_after(lines):
    log = get_logger("test")
    with log_context(correlation_id="c-1", event_type="nl.ketenbus.x"):
        with log_context(causation_id="e-1"):
            assert bound("correlation_id") == "c-1"
            log.info("inner")
        log.info("outer", event_type="said by the line")
    log.info("after")

    inner, outer, after = lines()
    assert (inner["correlation_id"], inner["causation_id"]) == ("c-1", "e-1")
    assert "causation_id" not in outer and outer["event_type"] == "said by the line"
    assert "correlation_id" not in after and bound("correlation_id") is None
    assert after["service"] == "kit-test"
