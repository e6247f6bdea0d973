"""A long ISO 20022 message is read on a worker thread, so the event loop keeps answering
everyone else meanwhile; a short one is read inline."""

import threading

from test_iso_api import BANK_A, XML, message, payment  # this folder's helpers

from scopay.api import iso
from scopay.iso20022.pacs008 import PACS008_V08, build_pacs008


def test_a_long_message_is_read_off_the_event_loop_and_a_short_one_on_it(live_server,
                                                                         monkeypatch):
    readers: list[tuple[int, int]] = []  # (message length, thread that read it)
    parse = iso.parse_message

    def recording(body: bytes):
        readers.append((len(body), threading.get_ident()))
        return parse(body)

    monkeypatch.setattr(iso, "parse_message", recording)
    short = build_pacs008(message(payment(1_000)), PACS008_V08)
    long = build_pacs008(message(*(payment(1_000) for _ in range(200))), PACS008_V08)
    assert len(short) < iso.READ_ON_THREAD_BYTES <= len(long)
    with live_server.client(BANK_A) as a:
        for body in (short, long, short):
            answer = a.post("/v1/iso20022", content=body, headers=XML)
            assert answer.status_code == 200, answer.text
    (first, loop), (_, worker), (_, loop_again) = readers
    assert first == len(short) and loop == loop_again and worker != loop
