"""Azure Functions entry point: bindings, and a few lines handing each message to shared/."""

from urllib.parse import urlsplit

import azure.functions as func

from shared.adapters.telemetry import configure
from shared.composition import intake, provisioner
from shared.service.intake import HttpAnswer
from shared.service.provisioning import Delivery
from shared.settings import HttpAccess, HttpAccessSettings, SettingsError

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


def _http_auth_level() -> func.AuthLevel:
    """A function key per route, unless Entra ID access is chosen (App Service authentication
    admits the caller, shared/service/intake.py checks its app role). A bad setting keeps the keys
    (and every HTTP call answers 500 naming it), so the queue function still loads."""
    try:
        entra = HttpAccessSettings.from_environment().mode is HttpAccess.ENTRA
    except SettingsError:
        entra = False
    return func.AuthLevel.ANONYMOUS if entra else func.AuthLevel.FUNCTION


_HTTP_AUTH_LEVEL = _http_auth_level()
_PRINCIPAL_HEADER = "x-ms-client-principal"


@app.route(route="hires", methods=["POST"], auth_level=_HTTP_AUTH_LEVEL)
def submit_hires(req: func.HttpRequest) -> func.HttpResponse:
    """One hire event or {"events": [...]}: valid ones queued, invalid ones refused at once."""
    address = urlsplit(req.url)
    return _response(
        intake().submit(
            req.get_body(),
            base_url=f"{address.scheme}://{address.netloc}",
            principal=req.headers.get(_PRINCIPAL_HEADER),
        )
    )


@app.route(route="hires/{eventId}", methods=["GET"], auth_level=_HTTP_AUTH_LEVEL)
def hire_status(req: func.HttpRequest) -> func.HttpResponse:
    """The hire as the ledger knows it; 404 when unknown."""
    return _response(
        intake().status(
            req.route_params.get("eventId", ""), principal=req.headers.get(_PRINCIPAL_HEADER)
        )
    )


def _response(answer: HttpAnswer) -> func.HttpResponse:
    return func.HttpResponse(
        answer.body_bytes(),
        status_code=answer.status,
        headers=dict(answer.headers),
        mimetype="application/json",
        charset="utf-8",
    )
