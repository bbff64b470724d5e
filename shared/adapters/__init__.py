"""The adapters: one module per outside service (Partner Center, Key Vault,
Entra ID, Table Storage, queues, Graph, OpenTelemetry), each owning its wire format and how
it reads that service's failures."""
