"""A backend's calls go over several small connection pools in turn, sharing its limits."""

from __future__ import annotations

import httpx
import pytest

from gateway.backends.http_lanes import Lanes


async def test_calls_take_the_lanes_in_turn_each_with_a_share_of_the_limits() -> None:
    served: list[int] = []
    given: list[httpx.Limits] = []

    def make(limits: httpx.Limits) -> httpx.AsyncClient:
        lane = len(given)
        given.append(limits)

        def handler(request: httpx.Request) -> httpx.Response:
            served.append(lane)
            return httpx.Response(200, json={"lane": lane})

        return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://m")

    lanes = Lanes(make, lanes=4, connections=64, keepalive=16)
    assert given == [httpx.Limits(max_connections=16, max_keepalive_connections=4)] * 4
    for _ in range(8):
        response = await lanes.next().get("/models")
        assert response.status_code == 200
    assert served == [0, 1, 2, 3, 0, 1, 2, 3]
    await lanes.aclose()
    assert all(client.is_closed for client in lanes.clients)


def test_limits_never_round_down_to_nothing() -> None:
    given: list[httpx.Limits] = []
    Lanes(lambda limits: given.append(limits) or httpx.AsyncClient(), lanes=8, connections=4)
    assert given[0] == httpx.Limits(max_connections=1, max_keepalive_connections=8)


def test_at_least_one_lane() -> None:
    with pytest.raises(ValueError, match="lanes"):
        Lanes(lambda limits: httpx.AsyncClient(), lanes=0)
