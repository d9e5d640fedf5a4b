#!/usr/bin/env python3
"""An integrator's script: a street's system writes buildings over the REST gateway, a district's
system reads them back, using nothing but HTTPS, JSON and `requests` (no Tierlink code).

The writer holds a `write` token of a principal of the street for the buildings catalog, the reader a `read` token of a
principal of the district whose grant covers the street's buildings (the demo's li@420502):

    pip install requests
    WRITER_TOKEN=tlk_… READER_TOKEN=tlk_… python3 ops/integrator.py \
        DIR/federation.json WRITER_CODE READER_CODE BATCHES_OUT

Steps: list the writer's catalogs; push buildings as JSON, all or nothing (a batch with one bad
record is refused with a problem document naming it, and nothing of it is stored), again
unchanged, then one changed; upload a CSV export (a dry run that stores nothing, then for real);
the reader queries them as JSON pages following the cursor and as NDJSON, reads one building's
history, asks explain, and saves the signed batches (Accept: application/x-tierlink-batches) to
BATCHES_OUT for `tierlink verify`; a missing, a malformed, another node's and a read-only token
each get their problem document, as does the writer's token writing a catalog it does not name. Each step prints one line.

Exit status 0 when every step behaved.
"""
import json
import os
import random
import sys

import requests

CATALOG = "103001001/000001"
BUILDINGS = f"/v1/catalogs/{CATALOG}"
PURPOSE = "subsistence allowance review"
COMMUNITY = "420502001001"
PROBLEM = "application/problem+json"
BATCH_MAGIC = b"TIERLINK-BATCH1\n"

# This run's buildings are numbered from here: a run against a federation that earlier runs wrote
# to still creates new buildings.
FIRST = random.randrange(100, 999) * 10


def building(number, floors=6):
    """A building of the demo street's first community, one of this run's."""
    code = f"{COMMUNITY}-B{FIRST + number:04d}"
    return {
        "building_code": code,
        "community_code": COMMUNITY,
        "building_name": f"{number}号楼",
        "address": f"夷陵大道{number}号",
        "floors": floors,
        "households": 24,
    }


class Failed(Exception):
    """A step that did not behave."""


def expect(condition, what):
    if not condition:
        raise Failed(what)


class Gateway:
    """One node's gateway, called with one token."""

    def __init__(self, url, ca, token):
        self.url = url.rstrip("/")
        self.ca = ca
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method, path, **kwargs):
        kwargs.setdefault("timeout", 60)
        # Per request: a session's own `verify` loses to REQUESTS_CA_BUNDLE from the environment.
        kwargs["verify"] = self.ca
        return self.session.request(method, self.url + path, **kwargs)

    def json(self, method, path, status=200, **kwargs):
        """The JSON answer of a call that must answer `status`."""
        r = self.call(method, path, **kwargs)
        expect(r.status_code == status, f"{method} {path}: {r.status_code}, expected {status}: {r.text[:400]}")
        return r.json()

    def read(self, path, accept="application/json", **params):
        """A read as the token's principal, stating its purpose."""
        return self.call(
            "GET", path, params=params, headers={"Accept": accept, "Tierlink-Purpose": PURPOSE}
        )

    def problem(self, r, status, kind):
        """Checks `r` is an RFC 9457 problem document of `kind` sent with `status`."""
        where = f"{r.request.method} {r.request.path_url}"
        expect(r.status_code == status, f"{where}: {r.status_code}, expected {status}: {r.text[:400]}")
        media = r.headers.get("Content-Type", "")
        expect(media.startswith(PROBLEM), f"{where}: Content-Type {media!r}, expected {PROBLEM}")
        doc = r.json()
        expect(doc.get("type") == f"/problems/{kind}", f"{where}: type {doc.get('type')!r}, expected /problems/{kind}")
        expect(doc.get("status") == status, f"{where}: the document's status is {doc.get('status')}")
        expect(doc.get("title") and doc.get("detail"), f"{where}: no title or detail: {doc}")
        page = self.call("GET", doc["type"])
        expect(page.status_code == 200, f"{doc['type']}: the problem type's page answered {page.status_code}")
        return doc


def stored(writer):
    """The buildings the writer's node holds."""
    listed = writer.json("GET", "/v1/catalogs")
    counts = {c["code"]: c["record_count"] for c in listed["catalogs"]}
    expect(CATALOG in counts, f"no buildings catalog in {sorted(counts)}")
    return counts[CATALOG]


def main():
    federation, writer_code, reader_code, batches_out = sys.argv[1:5]
    manifest = json.load(open(federation))
    nodes = {n["code"]: n for n in manifest["nodes"]}
    ca = manifest["ca_cert"]
    writer_token, reader_token = os.environ["WRITER_TOKEN"], os.environ["READER_TOKEN"]
    writer = Gateway(nodes[writer_code]["gateway"], ca, writer_token)
    reader = Gateway(nodes[reader_code]["gateway"], ca, reader_token)
    records = f"{BUILDINGS}/records"
    failures = 0

    def step(name, run):
        nonlocal failures
        try:
            print(f"ok    {name}: {run()}")
        except (Failed, requests.RequestException, ValueError, KeyError, TypeError) as e:
            failures += 1
            print(f"FAIL  {name}: {e}")

    def catalogs():
        listed = writer.json("GET", "/v1/catalogs")
        found = reader.json("GET", "/v1/directory/catalogs", params={"text": "楼栋"})
        publishers = sorted(c["publisher"] for c in found if c["catalog"]["code"] == CATALOG)
        expect(writer_code in publishers, f"the directory search found buildings of {publishers}")
        return f"{listed['node']} holds {len(listed['catalogs'])} catalogs, {stored(writer)} buildings; the directory finds buildings of {', '.join(publishers)}"

    def push():
        before = stored(writer)
        bad = [building(1), building(2, floors="many")]
        doc = writer.problem(writer.call("POST", records, json=bad), 422, "invalid-records")
        errors = doc.get("errors", [])
        expect([(e["record"], e["item"]) for e in errors] == [(2, "floors")], f"errors {errors}")
        expect(stored(writer) == before, "a refused batch stored records")
        good = [building(1), building(2)]
        written = writer.json("POST", records, json=good)
        expect(written["created"] == 2, f"wrote {written}")
        again = writer.json("POST", records, json=good)
        expect(again["unchanged"] == 2 and again["created"] == 0, f"the same batch again wrote {again}")
        changed = writer.json("POST", records, json=[building(1, floors=7)])
        expect(changed["updated"] == 1, f"a changed record wrote {changed}")
        expect(stored(writer) == before + 2, "the count is not two more")
        return f"a bad batch refused ({errors[0]['item']}: {errors[0]['problem']}), nothing stored; 2 created, then 2 unchanged, then 1 updated"

    def upload():
        header = "building_code,community_code,building_name,address,floors\r\n"
        rows = "".join(
            f"{b['building_code']},{b['community_code']},{b['building_name']},{b['address']},{b['floors']}\r\n"
            for b in (building(n) for n in (11, 12, 13))
        )
        csv = (header + rows).encode("gb18030")
        path = f"{BUILDINGS}/imports"
        post = lambda **params: writer.call(
            "POST", path, params=params, data=csv, headers={"Content-Type": "text/csv; charset=gb18030"}
        )
        before = stored(writer)
        r = post(dry_run="true")
        expect(r.status_code == 200, f"dry run: {r.status_code} {r.text[:400]}")
        dry = r.json()
        expect(dry["good"] == 3 and not dry["rejected"] and "written" not in dry, f"dry run {dry}")
        expect(stored(writer) == before, "a dry run stored records")
        real = post().json()
        expect(real["written"]["created"] == 3, f"import {real}")
        expect(stored(writer) == before + 3, "the count is not three more")
        return f"{dry['encoding']} {dry['format']}: dry run {dry['good']} good, nothing stored; then {real['written']['created']} created"

    def pages():
        keys, cursor, count, ids = [], None, 0, set()
        while True:
            params = {"target": writer_code, "limit": 7}
            if cursor:
                params["cursor"] = cursor
            r = reader.read(records, **params)
            expect(r.status_code == 200, f"page {count}: {r.status_code} {r.text[:400]}")
            page = r.json()
            expect(page["producer"] == writer_code, f"signed by {page['producer']}")
            expect(page["count"] == len(page["records"]) <= 7, f"page of {page['count']}")
            keys += [rec["_key"] for rec in page["records"]]
            ids.add(page["request_id"])
            count += 1
            cursor = page.get("next")
            if not cursor:
                break
        expect(len(keys) == len(set(keys)) == stored(writer), f"{len(keys)} keys over the pages")
        expect(keys == sorted(keys), "pages are not in key order")
        expect(building(13)["building_code"] in keys, "the imported buildings are not read")
        return f"{len(keys)} buildings in {count} pages of 7, each a read of its own ({len(ids)} request ids), signed by {writer_code}"

    def ndjson():
        r = reader.read(records, accept="application/x-ndjson", target=writer_code)
        expect(r.status_code == 200, f"{r.status_code} {r.text[:400]}")
        lines = [json.loads(line) for line in r.text.splitlines() if line]
        expect(all("_problem" not in line for line in lines), "the stream ended with a problem")
        expect(len(lines) == stored(writer), f"{len(lines)} lines")
        mine = [x for x in lines if x["_key"] == building(1)["building_code"]]
        expect(mine and mine[0]["floors"] == "7", f"the changed building reads {mine}")
        return f"{len(lines)} lines, request {r.headers['Tierlink-Request-Id']} signed by {r.headers['Tierlink-Producer']}, grant {r.headers['Tierlink-Grant']}"

    def history():
        key = building(1)["building_code"]
        page = reader.read(f"{records}/{key}/history", target=writer_code).json()
        versions = [v["_version"] for v in page["records"]]
        expect(versions == [1, 2], f"versions {versions}")
        expect([v["floors"] for v in page["records"]] == ["6", "7"], f"history {page['records']}")
        return f"{key}: versions {versions}"

    def explain():
        got = reader.read(f"{BUILDINGS}/explain", target=writer_code).json()
        expect("refusal" not in got, f"refused: {got.get('refusal')}")
        expect(got["keys_in_clear"] and got["items"], f"explanation {got}")
        return f"{got['principal']} as {got['role']}: grant {got['grant']}, {len(got['items'])} items"

    def batches():
        r = reader.read(records, accept="application/x-tierlink-batches", target=writer_code)
        expect(r.status_code == 200, f"{r.status_code} {r.text[:400]}")
        expect(r.content.startswith(BATCH_MAGIC), "not a batch file")
        with open(batches_out, "wb") as f:
            f.write(r.content)
        return f"{len(r.content)} bytes of request {r.headers['Tierlink-Request-Id']} saved to {batches_out}"

    def problems():
        shown = []
        # A read token writing asks its own node: a token is checked only where it was issued.
        for name, token, status, kind, write in [
            ("no token", None, 401, "token-missing", False),
            ("a malformed token", "tlk_notatoken", 401, "token-malformed", False),
            ("another node's token", writer_token, 401, "token-unknown", False),
            ("a read token writing", reader_token, 403, "scope-insufficient", True),
        ]:
            caller = Gateway(reader.url, ca, token)
            if write:
                r = caller.call("POST", records, json=[building(1)])
            else:
                r = caller.call("GET", "/v1/catalogs")
            caller.problem(r, status, kind)
            shown.append(f"{name} {status} {kind}")
        # The writer's token writes the catalogs it names, and no other: not the residents.
        before = writer.json("GET", "/v1/catalogs")
        r = writer.call("POST", "/v1/catalogs/101001001/000001/records", json=[{"id_number": "x"}])
        writer.problem(r, 403, "scope-insufficient")
        after = writer.json("GET", "/v1/catalogs")
        expect(before == after, "a refused write changed the catalogs")
        shown.append("the writer's token on another catalog 403 scope-insufficient")
        return "; ".join(shown)

    step("catalogs", catalogs)
    step("push JSON", push)
    step("import CSV", upload)
    step("query JSON pages", pages)
    step("query NDJSON", ndjson)
    step("history", history)
    step("explain", explain)
    step("signed batches", batches)
    step("problem documents", problems)
    print(f"integrator: {failures} step(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
