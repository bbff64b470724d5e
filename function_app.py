"""Azure Functions entry point: bindings, and a few lines handing each message to shared/."""

import azure.functions as func

from shared.composition import provisioner
from shared.provisioning import Delivery
from shared.telemetry import configure

# First, so the exporters see everything; with no telemetry setting this imports nothing.
configure()
app = func.FunctionApp()


@app.queue_trigger(
    arg_name="message", queue_name="%REQUEST_QUEUE_NAME%", connection="AzureWebJobsStorage"
)
@app.queue_output(
    arg_name="outcome", queue_name="%RESULT_QUEUE_NAME%", connection="AzureWebJobsStorage"
)
def provision_user(message: func.QueueMessage, outcome: func.Out[str]) -> None:
    """A hire event becomes a Partner Center user; the outcome goes to the result queue."""
    result = provisioner().handle(
        Delivery(
            body=message.get_body(), dequeue_count=message.dequeue_count or 1, message_id=message.id
        )
    )
    outcome.set(result.to_json())
