"""Scenario files: settlement stories in the domain's own words, for tests and the twin.

    # a three-bank gridlock
    participant A accounts CNY
    participant B accounts CNY credit_line 50.00
    fund A CNY 100.00
    pay P1 A -> B CNY 250.00 urgent   queued
    pay P2 B -> A CNY 250.00          settled
    expect P1 settled
    balance A CNY 100.00
    at 600                            # seconds since the start of the day
    resolve

One line, one step; `#` starts a comment. Payments are RTGS orders over the pure domain
(Ledger + Rtgs); every step is followed by the ledger's invariant check. A line ending in a
status (settled, queued, rejected, cancelled) asserts it. Errors name the line.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from scopay.domain.account import Account, AccountKind
from scopay.domain.ledger import Ledger, Transfer, invariant_violations
from scopay.domain.money import format_amount, parse_amount
from scopay.domain.payment import Priority
from scopay.domain.rtgs import AccountPolicy, Order, Rtgs, Step

STATUSES = ("settled", "queued", "rejected", "cancelled")
SECOND_US = 1_000_000


class ScenarioError(AssertionError):
    """A scenario line that is malformed or whose expectation does not hold."""


@dataclass
class Scenario:
    ledger: Ledger = field(default_factory=Ledger)
    rtgs: Rtgs | None = None
    accounts: dict[tuple[str, str], int] = field(default_factory=dict)
    issuance: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    now_us: int = 0
    _funding: int = 0

    def __post_init__(self) -> None:
        self.rtgs = Rtgs(self.ledger)

    # -- running ---------------------------------------------------------------------------

    def run(self, text: str) -> Scenario:
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                self.run_line(shlex.split(line))
            except ScenarioError as error:
                raise ScenarioError(f"line {number} `{line}`: {error}") from None
            problems = invariant_violations(self.ledger)
            if problems:
                raise ScenarioError(f"line {number} `{line}` broke invariants: {problems}")
        return self

    def run_line(self, words: list[str]) -> None:
        verb, args = words[0], words[1:]
        handler = getattr(self, f"_do_{verb}", None)
        if handler is None:
            raise ScenarioError(f"unknown step {verb!r}")
        handler(args)

    # -- steps -----------------------------------------------------------------------------

    def _do_participant(self, args: list[str]) -> None:
        # participant NAME accounts CCY[,CCY] [credit_line AMOUNT]
        name, _, currencies, *rest = args
        credit_line = rest[1] if rest[:1] == ["credit_line"] else None
        for currency in currencies.split(","):
            self._ensure_issuance(currency)
            line = parse_amount(credit_line, currency) if credit_line else 0
            account = Account(len(self.ledger.balances) + 1, name, currency,
                              credit_line_minor=line)
            self.ledger.open_account(account)
            self.accounts[(name, currency)] = account.id

    def _do_fund(self, args: list[str]) -> None:
        name, currency, amount = args
        self._funding += 1
        transfer = Transfer(f"fund-{self._funding}", self.issuance[currency],
                            self._account(name, currency), parse_amount(amount, currency),
                            currency)
        result = self.ledger.execute([transfer], self.now_us)
        if result.outcomes[0].rejection is not None:
            raise ScenarioError(f"funding refused: {result.outcomes[0].rejection}")
        self._apply(self.rtgs.release([transfer.credit_account_id], self.now_us))

    def _do_pay(self, args: list[str]) -> None:
        # pay ID FROM -> TO CCY AMOUNT [urgent|high|normal] [earliest S] [reject_by S] [STATUS]
        uetr, debtor, arrow, creditor, currency, amount, *rest = args
        if arrow != "->":
            raise ScenarioError("write `pay ID FROM -> TO CCY AMOUNT`")
        expected = rest.pop() if rest and rest[-1] in STATUSES else None
        options = _options(rest)
        order = Order(uetr, self._account(debtor, currency), self._account(creditor, currency),
                      parse_amount(amount, currency), currency,
                      Priority(options.get("priority", "normal")),
                      earliest_us=_seconds(options.get("earliest")),
                      reject_by_us=_seconds(options.get("reject_by")))
        self._apply(self.rtgs.submit(order, self.now_us))
        if expected is not None:
            self._expect(uetr, expected)

    def _do_block(self, args: list[str]) -> None:
        name, currency = args  # the account refuses every movement (its owner is suspended)
        self.ledger.set_blocked(self._account(name, currency), True)

    def _do_unblock(self, args: list[str]) -> None:
        name, currency = args
        self.ledger.set_blocked(self._account(name, currency), False)

    def _do_expect(self, args: list[str]) -> None:
        uetr, expected = args[:2]
        self._expect(uetr, expected)
        if len(args) == 3 and self.reasons.get(uetr) != args[2]:
            raise ScenarioError(f"{uetr} reason is {self.reasons.get(uetr)}, not {args[2]}")

    def _do_balance(self, args: list[str]) -> None:
        name, currency, amount = args
        balance = self.ledger.balances[self._account(name, currency)].posted_minor
        if balance != parse_amount(amount.lstrip("-"), currency) * (-1 if amount[0] == "-" else 1):
            raise ScenarioError(f"{name} {currency} is {format_amount(balance, currency)}")

    def _do_cancel(self, args: list[str]) -> None:
        order, step = self.rtgs.withdraw(args[0], self.now_us)
        if order is None:
            raise ScenarioError(f"{args[0]} is not queued")
        self.status[args[0]] = "cancelled"
        self._apply(step)

    def _do_priority(self, args: list[str]) -> None:
        self._apply(self.rtgs.change_priority(args[0], Priority(args[1]), self.now_us))

    def _do_front(self, args: list[str]) -> None:
        self._apply(self.rtgs.move(args[0], True, self.now_us))

    def _do_back(self, args: list[str]) -> None:
        self._apply(self.rtgs.move(args[0], False, self.now_us))

    def _do_limit(self, args: list[str]) -> None:
        # limit A -> B CCY AMOUNT   |   limit A multilateral CCY AMOUNT
        name = args[0]
        currency, amount = args[-2], parse_amount(args[-1], args[-2])
        policy = self._policy(name, currency)
        if args[1] == "->":
            policy.bilateral_limits[self._account(args[2], currency)] = amount
        elif args[1] == "multilateral":
            policy.multilateral_limit_minor = amount
        else:
            raise ScenarioError("write `limit A -> B CCY AMOUNT` or `limit A multilateral ...`")
        self._apply(self.rtgs.set_policy(self._account(name, currency), policy, self.now_us))

    def _do_reserve(self, args: list[str]) -> None:
        # reserve A CCY urgent|high AMOUNT
        name, currency, level, amount = args
        policy = self._policy(name, currency)
        if level == "urgent":
            policy.reserved_urgent_minor = parse_amount(amount, currency)
        else:
            policy.reserved_high_minor = parse_amount(amount, currency)
        self._apply(self.rtgs.set_policy(self._account(name, currency), policy, self.now_us))

    def _do_no_bypass(self, _args: list[str]) -> None:
        self.rtgs.bypass_fifo_normal = False

    def _do_at(self, args: list[str]) -> None:
        at_us = _seconds(args[0])
        if at_us < self.now_us:
            raise ScenarioError("time only moves forward")
        self.now_us = at_us
        self._apply(self.rtgs.tick(self.now_us))

    def _do_resolve(self, _args: list[str]) -> None:
        self._apply(self.rtgs.resolve(self.now_us))

    # -- internals --------------------------------------------------------------------------

    def _apply(self, step: Step) -> None:
        for order, _reason in step.queued:
            self.status[order.uetr] = "queued"
            self.reasons[order.uetr] = _reason.value
        for order in step.settled:
            self.status[order.uetr] = "settled"
        for order, rejection in step.rejected:
            self.status[order.uetr] = "rejected"
            self.reasons[order.uetr] = rejection.value

    def _expect(self, uetr: str, expected: str) -> None:
        actual = self.status.get(uetr)
        if actual != expected:
            reason = self.reasons.get(uetr)
            raise ScenarioError(f"{uetr} is {actual}{f' ({reason})' if reason else ''}, "
                                f"expected {expected}")

    def _ensure_issuance(self, currency: str) -> None:
        if currency not in self.issuance:
            account = Account(len(self.ledger.balances) + 1, f"CB-{currency}", currency,
                              AccountKind.ISSUANCE)
            self.ledger.open_account(account)
            self.issuance[currency] = account.id

    def _account(self, name: str, currency: str) -> int:
        try:
            return self.accounts[(name, currency)]
        except KeyError:
            raise ScenarioError(f"{name} has no {currency} account") from None

    def _policy(self, name: str, currency: str) -> AccountPolicy:
        return self.rtgs.policies.get(self._account(name, currency)) or AccountPolicy()


def _options(words: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    iterator = iter(words)
    for word in iterator:
        if word in ("urgent", "high", "normal"):
            options["priority"] = word
        elif word in ("earliest", "reject_by"):
            options[word] = next(iterator)
        else:
            raise ScenarioError(f"unknown option {word!r}")
    return options


def _seconds(text: str | None) -> int | None:
    return None if text is None else int(text) * SECOND_US


def run_scenario(text: str) -> Scenario:
    return Scenario().run(text)
