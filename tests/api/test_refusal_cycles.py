"""A refused request is freed with its last reference: no reference cycle through a refusal's
traceback keeps the request (a bulk request's thousand payments) in memory until the garbage
collector's pass over the generation it reached. Through the guard's direct route and
through FastAPI's routing alike."""

import pytest
from test_direct_routes import payment

from cycles import cyclic_garbage
from scopay.api.errors import ApiError

REFUSED = {
    "two amounts with too many decimals": lambda: {"payments": [
        payment("1.00"), payment("1.001"), payment("2.002")]},
    "an unknown field": lambda: {"payments": [payment("1.00", colour="red")]},
    "not a list": lambda: {"payments": "none"},
}


@pytest.mark.parametrize("case", REFUSED)
@pytest.mark.parametrize("door", [0, 1], ids=["direct", "fastapi"])
def test_a_refused_bulk_request_leaves_no_reference_cycle(both_doors, door, case):
    client = both_doors[door]
    with cyclic_garbage() as found:
        answer = client.post("/v1/payments/bulk", json=REFUSED[case]())
        assert answer.status_code == 422, answer.text
        # the server lets go of a finished request once it serves the next
        assert client.post("/v1/payments", json=payment("1.00")).status_code == 201
    refusals = [o for o in found if isinstance(o, (ApiError, BaseException))]
    assert refusals == []
