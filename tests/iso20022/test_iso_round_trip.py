"""Every message scopay builds is valid against the official XSD and reads back as the value it
was built from: build -> XSD -> parse -> equal, over generated payments and reports."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from iso_support import (
    app_headers,
    assert_schema_valid,
    cancellation_requests,
    cancellation_resolutions,
    credit_transfers,
    dinar_group,
    notifications,
    return_instructions,
    statements,
    status_reports,
)
from lxml import etree

from scopay.iso20022.camt029 import build_camt029, parse_camt029
from scopay.iso20022.camt053 import build_camt053, parse_camt053
from scopay.iso20022.camt054 import build_camt054, parse_camt054
from scopay.iso20022.camt056 import build_camt056, parse_camt056
from scopay.iso20022.head001 import build_app_header, build_envelope, parse_app_header
from scopay.iso20022.message import parse_message
from scopay.iso20022.model import BusinessMessage
from scopay.iso20022.pacs002 import build_pacs002, parse_pacs002
from scopay.iso20022.pacs004 import build_pacs004, parse_pacs004
from scopay.iso20022.pacs008 import build_pacs008, parse_pacs008
from scopay.iso20022.pacs009 import build_pacs009, parse_pacs009

# ISO_ROUND_TRIP_EXAMPLES raises the count for a thorough run; 25 keeps the suite fast.
ROUND_TRIP = settings(max_examples=int(os.environ.get("ISO_ROUND_TRIP_EXAMPLES", "25")),
                      deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_round_trip(xsd, message_type, value, build, parse) -> bytes:
    data = build(value)
    assert_schema_valid(xsd(message_type), data)
    assert parse(data) == value
    assert parse_message(data) == (message_type, value)
    return data


@ROUND_TRIP
@given(message=credit_transfers())
@example(message=dinar_group())
def test_pacs008_v08_round_trips_through_its_schema(xsd, message):
    check_round_trip(xsd, "pacs.008.001.08", message,
                     lambda m: build_pacs008(m, "pacs.008.001.08"), parse_pacs008)


@ROUND_TRIP
@given(message=credit_transfers())
@example(message=dinar_group())
def test_pacs008_v13_round_trips_through_its_schema(xsd, message):
    check_round_trip(xsd, "pacs.008.001.13", message,
                     lambda m: build_pacs008(m, "pacs.008.001.13"), parse_pacs008)


@settings(ROUND_TRIP, max_examples=max(5, ROUND_TRIP.max_examples // 5))
@given(message=credit_transfers(size_max=60))
def test_large_pacs008_groups_keep_their_counts_and_control_sums(xsd, message):
    check_round_trip(xsd, "pacs.008.001.08", message, build_pacs008, parse_pacs008)


@ROUND_TRIP
@given(message=credit_transfers(institution=True))
def test_pacs009_round_trips_through_its_schema(xsd, message):
    check_round_trip(xsd, "pacs.009.001.08", message, build_pacs009, parse_pacs009)


@ROUND_TRIP
@given(report=status_reports)
def test_pacs002_round_trips_through_its_schema(xsd, report):
    check_round_trip(xsd, "pacs.002.001.10", report, build_pacs002, parse_pacs002)


@ROUND_TRIP
@given(instruction=return_instructions)
def test_pacs004_round_trips_through_its_schema(xsd, instruction):
    check_round_trip(xsd, "pacs.004.001.09", instruction, build_pacs004, parse_pacs004)


@ROUND_TRIP
@given(request=cancellation_requests)
def test_camt056_round_trips_through_its_schema(xsd, request):
    check_round_trip(xsd, "camt.056.001.09", request, build_camt056, parse_camt056)


@ROUND_TRIP
@given(resolution=cancellation_resolutions)
def test_camt029_round_trips_through_its_schema(xsd, resolution):
    check_round_trip(xsd, "camt.029.001.10", resolution, build_camt029, parse_camt029)


@ROUND_TRIP
@given(statement=statements())
def test_camt053_round_trips_through_its_schema(xsd, statement):
    check_round_trip(xsd, "camt.053.001.08", statement, build_camt053, parse_camt053)


@ROUND_TRIP
@given(notification=notifications())
def test_camt054_round_trips_through_its_schema(xsd, notification):
    check_round_trip(xsd, "camt.054.001.08", notification, build_camt054, parse_camt054)


@ROUND_TRIP
@given(header=app_headers("pacs.008.001.08"))
def test_business_application_header_round_trips_alone(xsd, header):
    data = build_app_header(header)
    assert_schema_valid(xsd("head.001.001.02"), data)
    assert parse_app_header(data) == header
    assert parse_message(data) == ("head.001.001.02", header)


@ROUND_TRIP
@given(data=st.data(), message=credit_transfers(size_max=2))
def test_enveloped_message_carries_its_header_and_document(xsd, data, message):
    header = data.draw(app_headers("pacs.008.001.13"))
    enveloped = build_envelope(header, build_pacs008(message, "pacs.008.001.13"))
    header_element, document = etree.fromstring(enveloped).getchildren()
    assert xsd("head.001.001.02").validate(header_element), xsd("head.001.001.02").error_log
    assert xsd("pacs.008.001.13").validate(document), xsd("pacs.008.001.13").error_log
    assert parse_message(enveloped) == (
        "pacs.008.001.13", BusinessMessage(header, "pacs.008.001.13", message))


@settings(ROUND_TRIP, max_examples=3)
@given(data=st.data(), message=credit_transfers(size_max=1))
def test_envelope_refuses_a_header_naming_another_message(data, message):
    header = data.draw(app_headers("pacs.009.001.08"))
    with pytest.raises(ValueError, match="header names pacs.009.001.08"):
        build_envelope(header, build_pacs008(message))
