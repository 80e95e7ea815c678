"""The PyMongo async client (not motor, which MongoDB deprecated in favour of this API)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ketenbus.kit.settings import ServiceSettings

Document = dict[str, Any]


def create_mongo_client(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.mongodb_url.get_secret_value(),
        tz_aware=True,
        appname=f"ketenbus-{settings.service_name}",
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
        # Writes and reads a transaction depends on must survive a primary failover.
        w="majority",
        retryWrites=True,
    )


def database(
    client: AsyncMongoClient[Document], settings: ServiceSettings
) -> AsyncDatabase[Document]:
    return client[settings.database_name]
