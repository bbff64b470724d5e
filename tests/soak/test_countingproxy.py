"""The counting proxy in front of Azurite's tables passes every call through, and counts it."""

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableServiceClient, UpdateMode

from benchmarks.countingproxy import CountingProxy
from devtools.azurite import AzuriteQueue, connection_string


def test_table_calls_pass_through_and_are_counted(azurite: AzuriteQueue):
    with CountingProxy(azurite.host, azurite.table_port) as proxy:
        service = TableServiceClient.from_connection_string(
            connection_string(azurite.host, azurite.port, proxy.port)
        )
        table = service.create_table_if_not_exists("proxied")
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "state": "claimed"})
        entity = table.get_entity("p", "r")
        table.update_entity(
            {"PartitionKey": "p", "RowKey": "r", "state": "created"},
            mode=UpdateMode.MERGE,
            etag=entity.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
        # A stale etag is refused by Azurite, through the proxy, as it would be directly.
        with pytest.raises(ResourceModifiedError):
            table.update_entity(
                {"PartitionKey": "p", "RowKey": "r", "state": "stale"},
                mode=UpdateMode.MERGE,
                etag=entity.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        assert table.get_entity("p", "r")["state"] == "created"
        assert proxy.total == 6
        assert proxy.counts["GET"] == 2
