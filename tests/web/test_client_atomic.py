"""``Replica.atomic`` in the JS client: several writes stored together or not at all (a
dispensing and the stock it takes), in Debian's chromium against a real server."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.web.client_support import server_records, sign_in
from tests.web.conftest import Clinic, js


def test_an_atomic_batch_lands_whole_and_reaches_the_server_once(
    lib_page: Page, clinic: Clinic
) -> None:
    sign_in(lib_page, clinic.worker)
    outcome = js(
        lib_page,
        """
        const stock = await rep.put('pharmacy_inventory',
                                    {facility_id: 'f-1', medicine_id: arg});
        const before = await rep.pendingCount();
        const patient = await rep.atomic((batch) => {
          const id = batch.put('patients', {name: 'Amina', facility_id: 'f-1', village: 'x'});
          batch.increment('pharmacy_inventory', stock, 'quantity', 7);
          batch.increment('pharmacy_inventory', stock, 'quantity', -2);
          return id;
        });
        const queued = (await rep.outbox()).slice(before).map((e) => [e.collection, e.op]);
        const result = (await rep.sync()).toJSON();
        const rejected = (await rep.outbox({status: 'REJECTED'})).map((e) => e.lastError);
        return {rejected, stock, patient, queued, result,
                shown: await rep.get('pharmacy_inventory', stock),
                named: await rep.get('patients', patient)};
    """,
        f"m-atomic-{clinic.worker.username}",
    )
    assert outcome["queued"] == [
        ["patients", "upsert"],
        ["pharmacy_inventory", "increment"],
        ["pharmacy_inventory", "increment"],
    ]
    assert outcome["result"]["ok"] and outcome["result"]["applied"] == 4, outcome["rejected"]
    assert outcome["shown"]["quantity"] == 5 and outcome["named"]["name"] == "Amina"
    (stock,) = server_records(clinic, "pharmacy_inventory", id=outcome["stock"])
    assert stock["quantity"] == 5
    assert len(server_records(clinic, "patients", id=outcome["patient"])) == 1


def test_a_refused_write_or_a_failing_callback_stores_nothing_of_the_batch(
    lib_page: Page, clinic: Clinic
) -> None:
    sign_in(lib_page, clinic.worker)
    outcome = js(
        lib_page,
        """
        const before = await rep.pendingCount();
        const attempt = async (build) => {
          try { await rep.atomic(build); return 'stored'; }
          catch (e) { return `${e.name}: ${e.message}`; }
        };
        let kept = null;
        const refused = await attempt((batch) => {
          kept = batch.put('patients', {name: 'Never', facility_id: 'f-1'});
          batch.increment('pharmacy_inventory', 'no such/id', 'quantity', 1);
        });
        const failed = await attempt(async (batch) => {
          batch.put('patients', {name: 'Never either', facility_id: 'f-1'}, 'p-never');
          throw new Error('the form was cancelled');
        });
        let late = null;
        await rep.atomic((batch) => { late = batch; });
        let reused = 'no error';
        try { late.put('patients', {name: 'Too late'}); } catch (e) { reused = e.message; }
        return {refused, failed, reused, pending: (await rep.pendingCount()) - before,
                kept: await rep.get('patients', kept), never: await rep.get('patients', 'p-never')};
    """,
    )
    assert outcome["refused"].startswith("ValidationError: invalid record id"), outcome
    assert outcome["failed"] == "Error: the form was cancelled"
    assert "ended" in outcome["reused"]
    assert outcome["pending"] == 0 and outcome["kept"] is None and outcome["never"] is None
