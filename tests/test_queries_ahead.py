"""A batch's HogQL lane: each account's query sent ahead once, in account order, its answer (or error) taken by that
account's audit and counted in its stats; never sent twice, never held without bound."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from auditor.clients.ahead import QueriesAhead, reading_ahead
from auditor.clients.posthog_api import ApiError
from auditor.facts import combined_query
from tests.conftest import fast_client
from tests.standin import Fault
from tests.test_batch import batch, book  # noqa: F401  (the book of accounts, as the batch tests use it)

KEY = ("https://h", "digest", "1", "SELECT 1 LIMIT 1", "q", 1)


def test_an_audit_that_asked_first_is_never_sent_ahead_again():
    store = QueriesAhead()
    assert store.take(KEY) is None  # the audit sends its own
    assert store.promise(KEY) is None and store.sent == 0


def test_an_answer_is_taken_once():
    store = QueriesAhead()
    answer = store.promise(KEY)
    assert answer is not None and store.promise(KEY) is None
    store.settle(KEY, answer, value="rows", rows=1)
    assert store.take(KEY) is answer and store.take(KEY) is None
    assert (store.sent, store.taken) == (1, 1)


def test_answers_waiting_to_be_taken_are_bounded_in_number_and_rows():
    store = QueriesAhead(max_waiting=2, max_rows=10)
    keys = [(*KEY[:2], str(i), *KEY[3:]) for i in range(4)]
    first, second = store.promise(keys[0]), store.promise(keys[1])
    assert first is not None and second is not None
    promised: list[object] = []
    worker = threading.Thread(target=lambda: promised.append(store.promise(keys[2])))
    worker.start()
    worker.join(0.2)
    assert worker.is_alive()  # two wait to be taken: the third waits
    store.take(keys[0])
    worker.join(5)
    assert promised and promised[0] is not None
    store.settle(keys[1], second, value="big", rows=50)  # over the row bound
    store.take(keys[2])
    blocked = threading.Thread(target=lambda: promised.append(store.promise(keys[3])))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()
    assert store.close() == 1  # the untaken answer is dropped, and a closed store promises nothing
    blocked.join(5)
    assert promised[-1] is None


def test_the_audit_gets_the_answer_sent_ahead_and_counts_its_requests(standin, scenario):
    text, name, limit = combined_query()
    store = QueriesAhead()
    with fast_client(standin.url, standin.api_key) as lane:
        assert lane.send_ahead(store, scenario.project_id, text, name=name, limit=limit)
    with fast_client(standin.url, standin.api_key) as client, reading_ahead(store):
        result = client.query(scenario.project_id, text, name=name, limit=limit)
    assert result.rows and standin.count(r"/query/$") == 1
    assert (client.stats.http_requests, client.stats.hogql_queries) == (1, 1)
    assert (store.sent, store.taken) == (1, 1)


def test_the_audit_gets_the_error_the_query_sent_ahead_ended_in(standin, scenario):
    text, name, limit = combined_query()
    store = QueriesAhead()
    standin.faults[:] = [Fault(r"/query/$", status=504, body={"detail": "Query timed out"})]
    with fast_client(standin.url, standin.api_key, max_retries=0) as lane:
        lane.send_ahead(store, scenario.project_id, text, name=name, limit=limit)
    with fast_client(standin.url, standin.api_key) as client, reading_ahead(store), \
            pytest.raises(ApiError) as raised:
        client.query(scenario.project_id, text, name=name, limit=limit)
    assert raised.value.timed_out  # so the audit falls back to the parts, as if it had sent the query itself
    assert client.stats.http_requests == 1 and standin.count(r"/query/$") == 1


def test_an_audit_waits_for_the_answer_under_way(standin, scenario):
    text, name, limit = combined_query()
    store = QueriesAhead()
    standin.faults[:] = [Fault(r"/query/$", delay=0.3)]
    with fast_client(standin.url, standin.api_key) as lane:
        sender = threading.Thread(target=lane.send_ahead, args=(store, scenario.project_id, text),
                                  kwargs={"name": name, "limit": limit})
        sender.start()
        while store.sent == 0:
            time.sleep(0.005)
        with fast_client(standin.url, standin.api_key) as client, reading_ahead(store):
            result = client.query(scenario.project_id, text, name=name, limit=limit)
        sender.join()
    assert result.rows and standin.count(r"/query/$") == 1


def test_a_batch_sends_each_accounts_query_once_and_each_report_counts_it(book, tmp_path, standin):  # noqa: F811
    out = tmp_path / "portfolio"
    batch(book, out, "--parallel", "2")
    queries = [path for method, path in standin.requests if method == "POST"]
    assert all(re.fullmatch(r"/api/projects/\d+/query/", p) for p in queries)
    # Three accounts read HogQL; the fourth's key is refused before any query.
    assert sorted(queries) == [f"/api/projects/{pid}/query/" for pid in (4242, 4243, 4244)]
    for slug in ("hedgebox-prod", "hedgebox-marketing", "hedgebox-docs"):
        stats = json.loads((out / slug / "report.json").read_text())["stats"]
        assert stats["hogql_queries"] == 1


def test_a_batch_sends_the_queries_ahead_of_its_accounts(book, tmp_path, standin):  # noqa: F811
    """One account at a time: the last account's query went out before that account began (its project fetch),
    as the lane sends every account's query at the start instead of when each account reaches gathering."""
    batch(book, tmp_path / "portfolio", "--parallel", "1")
    order = [f"{method} {path}" for method, path in standin.requests]
    assert order.index("POST /api/projects/4244/query/") < order.index("GET /api/projects/4244/")


def test_a_lane_waiting_for_room_gives_up_a_query_its_audit_has_claimed():
    store = QueriesAhead(max_waiting=1)
    keys = [(*KEY[:2], str(i), *KEY[3:]) for i in range(2)]
    assert store.promise(keys[0]) is not None
    promised: list[object] = []
    waiting = threading.Thread(target=lambda: promised.append(store.promise(keys[1])))
    waiting.start()
    waiting.join(0.1)
    assert waiting.is_alive()
    assert store.take(keys[1]) is None  # its audit got there first and sends its own
    waiting.join(5)
    assert promised == [None]


def test_what_an_audit_never_took_is_dropped_when_it_ends():
    """An account that failed before its query (its project gone, its files unreadable): its answer no longer
    holds rows against the lane's bound, and is never sent again."""
    store = QueriesAhead(max_rows=10)
    answer = store.promise(KEY)
    assert answer is not None
    store.settle(KEY, answer, value="rows", rows=10)
    store.drop([KEY])
    other = (*KEY[:2], "2", *KEY[3:])
    assert store.promise(other) is not None  # room again
    assert store.promise(KEY) is None
