"""pacs.008 reading speed against bare lxml, in the same run, on the same bytes.

    .venv/bin/python bench/iso20022.py            # 1-transaction and 1,000-transaction messages
    .venv/bin/python bench/iso20022.py --quick    # fewer rounds, for a smoke test

Baseline: lxml parses the bytes (the hardening options scopay's parser uses: no entities,
network, DTD or huge trees, comments and PIs dropped; scopay's parser also sets collect_ids=False,
which spares libxml2 its ID table and parses a few per cent faster) and validates them against
the official pacs.008.001.08 XSD: what any careful ISO 20022 reader must do.
Ours: scopay.iso20022.pacs008.parse_pacs008, i.e. size and DOCTYPE checks, the same parse with
the same XSD validating while libxml2 reads the bytes, scopay's own strict reader (structure,
types, code lists, amounts against their currency) and the mapping to domain Payments, with
NbOfTxs and CtrlSum checked. The reader takes these messages from their text (pattern.py), so
the parse builds no tree; the same run also measures the tree reader it falls back to
(tree_reader_ratio), on a tree parsed and validated as the baseline does, and checks both agree.
Since ours builds no tree, the run also measures lxml's own parse and XSD with no tree built
(lxml_no_tree_messages_per_s; libxml2 then leaves namespace errors unreported, which scopay's
reader rules out by itself), and our ratio to that (ratio_vs_lxml_no_tree): what the reader
costs beyond parsing and validating alone.
Ceiling: the baseline plus the least a Python mapper must do, a walk reading every element's
tag and text into dicts (no checks, no domain objects); its ratio bounds what any mapper over
an lxml tree can reach in CPython.
The XSDs come from SCOPAY_ISO20022_SCHEMAS, or ../shared/data/iso20022 next to the repository.
Baseline and ours alternate in rounds; each side keeps its best round, so a noisy neighbour
on a shared machine costs both alike. The last line is one JSON object; ratio_vs_lxml is the
worse of the two sizes (messages/s ours / messages/s baseline; 1.0 would be no overhead).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

from lxml import etree

from _options import parser
from scopay.domain.payment import ChargeBearer, Party, Payment, PostalAddress, Priority
from scopay.iso20022.credit_transfer import read_credit_transfer_text
from scopay.iso20022.document import open_document
from scopay.iso20022.model import CreditTransferMessage
from scopay.iso20022.pacs008 import (
    MESSAGE_TYPES,
    PACS008_V08,
    VERSIONS,
    TransactionText,
    build_pacs008,
    parse_pacs008,
    read_pacs008,
    read_transaction_text,
    read_validated_text,
)
from scopay.iso20022.schemas import SCHEMAS_DIR_ENV, SchemaUnavailable, schema_for

DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "iso20022"
CREATED_AT_US = 1_795_939_200_000_000  # 2026-11-29T00:00:00Z
SIZES = (1, 1_000)  # transactions per message
ROUND_SECONDS = 0.25  # time per side per round
ROUNDS = 7
GOAL = 0.5


def sample_payment(n: int, message_id: str) -> Payment:
    """A CBPR+-like customer transfer: CNY debtor in Shanghai, RUB creditor in Moscow."""
    return Payment(
        uetr=f"8a562c67-ca16-48ba-b074-{n:012x}", instruction_id=f"ICBK-INS-{n:06d}",
        end_to_end_id=f"INV-2026-{n:06d}", debtor_agent="ICBKCNBJ", creditor_agent="SABRRUMM",
        debtor=Party("上海丝路贸易有限公司", account="6222020200112233445",
                     address=PostalAddress(country="CN", town="上海", post_code="200040",
                                           street="南京西路", building_number="1266")),
        creditor=Party("ООО «Северный Шёлк»", account="40702810938000012345",
                       address=PostalAddress(country="RU", town="Москва", post_code="125009",
                                             street="Тверская улица", building_number="7")),
        settlement_amount_minor=125_000_000 + n, settlement_currency="RUB",
        instructed_amount_minor=10_000_000, instructed_currency="CNY",
        exchange_rate=Decimal("12.5"), charge_bearer=ChargeBearer.SHARED,
        remittance=f"Invoice 2026-{n:06d}, silk fabric", purpose="GDDS", priority=Priority.HIGH,
        message_id=message_id,
    )


def sample_message(transactions: int) -> bytes:
    message_id = f"ICBKCNBJ-BENCH-{transactions}"
    payments = tuple(sample_payment(n, message_id) for n in range(transactions))
    return build_pacs008(CreditTransferMessage(message_id, CREATED_AT_US, payments), PACS008_V08)


def bare_lxml(data: bytes, schema: etree.XMLSchema) -> Callable[[], etree._Element]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)

    def read() -> etree._Element:
        document = etree.fromstring(data, parser)
        assert schema.validate(document)
        return document

    return read


class _NoTree:
    def close(self) -> None:
        return None


def lxml_no_tree(data: bytes, schema: etree.XMLSchema) -> Callable[[], None]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, schema=schema, target=_NoTree())

    def read() -> None:
        etree.fromstring(data, parser)
        assert not parser.error_log

    return read


def walk(element: etree._Element) -> dict:
    return {child.tag: walk(child) if len(child) else child.text
            for child in element.getchildren()}


def lxml_and_walk(read: Callable[[], etree._Element]) -> Callable[[], object]:
    return lambda: walk(read())


def parse_pacs008_from_tree(data: bytes) -> CreditTransferMessage:
    """parse_pacs008 with the tree reader (what parse_pacs008 falls back to)."""
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_pacs008(document, message_type)


def read_from_text(data: bytes) -> CreditTransferMessage | None:
    document, message_type = open_document(data, MESSAGE_TYPES)
    return read_credit_transfer_text(data, document, VERSIONS[message_type], TransactionText,
                                     read_transaction_text)


def best_rate(read: Callable[[], object], best: float) -> float:
    """Run `read` for about ROUND_SECONDS; the better of `best` and this round, in messages/s."""
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < ROUND_SECONDS:
        read()
        count += 1
    return max(best, count / elapsed)


def measure(transactions: int, rounds: int) -> dict:
    data = sample_message(transactions)
    schema = schema_for(PACS008_V08)
    assert schema is not None, "schemas must be configured for this benchmark"
    message = parse_pacs008(data)
    assert len(message.payments) == transactions
    assert read_validated_text(data, MESSAGE_TYPES) is not None, "not read with no tree"
    assert read_from_text(data) == message == parse_pacs008_from_tree(data), "readers differ"
    baseline = bare_lxml(data, schema)
    no_tree = lxml_no_tree(data, schema)
    ceiling = lxml_and_walk(baseline)
    lxml_rate = ours_rate = ceiling_rate = tree_rate = no_tree_rate = 0.0
    for _ in range(rounds):
        lxml_rate = best_rate(baseline, lxml_rate)
        no_tree_rate = best_rate(no_tree, no_tree_rate)
        ours_rate = best_rate(lambda: parse_pacs008(data), ours_rate)
        ceiling_rate = best_rate(ceiling, ceiling_rate)
        tree_rate = best_rate(lambda: parse_pacs008_from_tree(data), tree_rate)
    return {
        "transactions": transactions, "bytes": len(data), "lxml_messages_per_s": lxml_rate,
        "ours_messages_per_s": ours_rate, "ratio": ours_rate / lxml_rate,
        "ceiling_ratio": ceiling_rate / lxml_rate, "tree_ratio": tree_rate / lxml_rate,
        "lxml_no_tree_messages_per_s": no_tree_rate, "no_tree_ratio": ours_rate / no_tree_rate,
    }


def configure_schemas() -> None:
    if not os.environ.get(SCHEMAS_DIR_ENV):
        os.environ[SCHEMAS_DIR_ENV] = str(DEFAULT_SCHEMAS_DIR)
    if not Path(os.environ[SCHEMAS_DIR_ENV]).is_dir():
        sys.exit(f"no ISO 20022 schemas at {os.environ[SCHEMAS_DIR_ENV]}; set {SCHEMAS_DIR_ENV}")
    try:
        schema_for(PACS008_V08)
    except SchemaUnavailable as error:  # a folder without the pacs.008 schema, say
        sys.exit(str(error))


def main(argv: Sequence[str]) -> None:
    args = parser(__doc__, "two rounds instead of seven").parse_args(argv)
    configure_schemas()
    rows = [measure(size, 2 if args.quick else ROUNDS) for size in SIZES]
    for row in rows:
        print(f"pacs.008, {row['transactions']:>5} transaction(s), {row['bytes']:>9} bytes: "
              f"lxml parse+XSD {row['lxml_messages_per_s']:>9.1f} msg/s "
              f"({row['lxml_messages_per_s'] * row['transactions']:>8.0f} tx/s), "
              f"scopay parse+XSD+map {row['ours_messages_per_s']:>9.1f} msg/s "
              f"({row['ours_messages_per_s'] * row['transactions']:>8.0f} tx/s), "
              f"ratio {row['ratio']:.2f} (tree reader {row['tree_ratio']:.2f}, "
              f"bare walk ceiling {row['ceiling_ratio']:.2f}; lxml with no tree "
              f"{row['lxml_no_tree_messages_per_s']:.1f} msg/s, ratio to it "
              f"{row['no_tree_ratio']:.2f})")
    worst = min(row["ratio"] for row in rows)
    print(f"ratio vs lxml (worse size): {worst:.2f}; goal {GOAL}")
    summary = {"ratio_vs_lxml": round(worst, 3), "goal": GOAL}
    for row in rows:
        size = row["transactions"]
        summary[f"ratio_{size}tx"] = round(row["ratio"], 3)
        summary[f"walk_ceiling_ratio_{size}tx"] = round(row["ceiling_ratio"], 3)
        summary[f"tree_reader_ratio_{size}tx"] = round(row["tree_ratio"], 3)
        summary[f"ratio_vs_lxml_no_tree_{size}tx"] = round(row["no_tree_ratio"], 3)
        summary[f"lxml_no_tree_messages_per_s_{size}tx"] = round(
            row["lxml_no_tree_messages_per_s"], 1)
        summary[f"lxml_messages_per_s_{size}tx"] = round(row["lxml_messages_per_s"], 1)
        summary[f"ours_messages_per_s_{size}tx"] = round(row["ours_messages_per_s"], 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
