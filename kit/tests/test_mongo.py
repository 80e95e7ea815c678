"""A service's database hands out one collection object per name."""

from __future__ import annotations

from pymongo import AsyncMongoClient

from ketenbus.kit.mongo import Database


async def test_each_collection_object_is_made_once():
    # Never connects: a collection object is made without asking the server.
    client = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False, tz_aware=True)
    db = Database(client, "kit_test")

    assert db.reminders is db["reminders"] is db.reminders
    assert db.reminders is not db.opt_outs
    assert (db.reminders.name, db.reminders.database.name) == ("reminders", "kit_test")
    assert db.reminders.codec_options.tz_aware  # the client's options, as client[name] has
    await client.close()
