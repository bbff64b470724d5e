"""host.json, settings, connections and indexing: what the host reads before any queue."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from devtools.funchost import FunctionHostError, LocalFunctionsHost
from devtools.funchost.options import load_host_config, parse_queues_options, parse_timespan
from devtools.funchost.settings import (
    merge_settings,
    read_local_settings,
    resolve_setting_expressions,
)
from devtools.funchost.storage import (
    DEVELOPMENT_STORAGE_QUEUE_PORT,
    decode_message,
    resolve_storage_connection,
)
from devtools.funchost.worker import worker_thread_count

# -- host.json ---------------------------------------------------------------------------


def test_defaults_match_the_host():
    options = parse_queues_options({}, cpu_count=4)
    assert options.batch_size == 16
    assert options.new_batch_threshold == 8 * 4  # batchSize/2 x cores
    assert options.max_in_flight == 16 + 32
    assert options.max_dequeue_count == 5
    assert options.visibility_timeout == timedelta(0)
    assert options.max_polling_interval == timedelta(seconds=2)  # the local default
    assert options.message_encoding == "base64"


def test_default_threshold_follows_a_configured_batch_size():
    assert parse_queues_options({"batchSize": 5}, cpu_count=2).new_batch_threshold == 4


def test_keys_are_case_insensitive_and_durations_parse():
    options = parse_queues_options(
        {
            "BATCHSIZE": 32,
            "newbatchthreshold": 0,
            "VisibilityTimeout": "00:01:30",
            "maxPollingInterval": 250,  # milliseconds, as host.json allows
            "messageEncoding": "None",
        }
    )
    assert (options.batch_size, options.new_batch_threshold) == (32, 0)
    assert options.visibility_timeout == timedelta(seconds=90)
    assert options.max_polling_interval == timedelta(milliseconds=250)
    assert options.message_encoding == "none"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:02", timedelta(seconds=2)),
        ("00:00:00.250", timedelta(milliseconds=250)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:05", timedelta(minutes=5)),
    ],
)
def test_timespan_text(text: str, expected: timedelta):
    assert parse_timespan(text, setting="x", numbers_are_milliseconds=False) == expected


@pytest.mark.parametrize(
    "section",
    [
        {"batchSize": 33},
        {"batchSize": 0},
        {"maxDequeueCount": 0},
        {"maxPollingInterval": "00:00:00.050"},
        {"visibilityTimeout": 5},  # a bare number is not a TimeSpan
        {"visibilityTimeout": "soon"},
        {"messageEncoding": "utf8"},
        {"newBatchThreshold": -2},
    ],
)
def test_invalid_options_are_refused(section: dict[str, object]):
    with pytest.raises(FunctionHostError):
        parse_queues_options(section)


def test_overrides_replace_host_json_keys_whatever_their_spelling(tmp_path: Path):
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "functions": ["only_this"],
                "extensions": {"queues": {"maxDequeueCount": 9, "batchSize": 2}},
            }
        )
    )
    config = load_host_config(tmp_path, overrides={"MAXDEQUEUECOUNT": 2}, cpu_count=1)
    assert config.queues.max_dequeue_count == 2
    assert config.queues.batch_size == 2
    assert config.function_allowlist == ("only_this",)


def test_missing_host_json_means_defaults(tmp_path: Path):
    assert load_host_config(tmp_path, cpu_count=1).queues.batch_size == 16


# -- settings ----------------------------------------------------------------------------


def test_local_settings_values_become_strings(tmp_path: Path):
    path = tmp_path / "local.settings.json"
    path.write_text(
        json.dumps({"IsEncrypted": False, "Values": {"A": "x", "B": True, "C": 3, "D": None}})
    )
    assert read_local_settings(path) == {"A": "x", "B": "true", "C": "3"}


def test_encrypted_local_settings_are_refused(tmp_path: Path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": True, "Values": {"A": "opaque"}}))
    with pytest.raises(FunctionHostError, match="encrypted"):
        read_local_settings(path)


def test_environment_beats_file_and_explicit_settings_beat_both():
    merged = merge_settings({"A": "file", "B": "file"}, {"B": "env", "C": "env"}, {"C": "arg"})
    assert merged == {"A": "file", "B": "env", "C": "arg"}


def test_setting_expressions():
    settings = {"QUEUE": "orders", "Env": "dev"}
    assert resolve_setting_expressions("%QUEUE%-%env%", settings, where="t") == "orders-dev"
    with pytest.raises(FunctionHostError, match="%MISSING%"):
        resolve_setting_expressions("%MISSING%", settings, where="t")


# -- connections -------------------------------------------------------------------------


def test_development_storage_means_azurite_on_the_standard_port():
    connection = resolve_storage_connection(
        None, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    )
    assert connection.name == "AzureWebJobsStorage"
    assert connection.describe().endswith(
        f"127.0.0.1:{DEVELOPMENT_STORAGE_QUEUE_PORT}/devstoreaccount1"
    )


def test_connection_names_try_the_azurewebjobs_prefix_first():
    settings = {"AzureWebJobsOrders": "UseDevelopmentStorage=true", "Orders": "AccountName=x"}
    assert resolve_storage_connection("Orders", settings).name == "AzureWebJobsOrders"
    assert resolve_storage_connection("Orders", {"Orders": "AccountName=x"}).name == "Orders"


def test_identity_based_connection():
    settings = {
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001",
    }
    connection = resolve_storage_connection("AzureWebJobsStorage", settings)
    assert connection.queue_service_uri == "https://acct.queue.core.windows.net"
    assert connection.connection_string is None
    assert "identity" in connection.describe()
    by_account = resolve_storage_connection("Other", {"Other__accountName": "acct2"})
    assert by_account.queue_service_uri == "https://acct2.queue.core.windows.net"


def test_missing_connection_is_explained():
    with pytest.raises(FunctionHostError, match="queueServiceUri"):
        resolve_storage_connection("AzureWebJobsStorage", {})


def test_base64_decoding_ignores_white_space_like_dotnet():
    assert decode_message("aGVs\nbG8=", "base64") == b"hello"


def test_worker_thread_count_default_and_setting():
    assert 5 <= worker_thread_count({}) <= 32
    assert worker_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "3"}) == 3
    with pytest.raises(FunctionHostError):
        worker_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "0"})


# -- indexing ----------------------------------------------------------------------------

_HEADER = "import azure.functions as func\napp = func.FunctionApp()\n"
_TRIGGER = (
    "@app.queue_trigger(arg_name='msg', queue_name='%IN%', connection='AzureWebJobsStorage')\n"
)


def _app(tmp_path: Path, body: str, settings: dict[str, str] | None = None) -> LocalFunctionsHost:
    (tmp_path / "function_app.py").write_text(_HEADER + body)
    return LocalFunctionsHost(tmp_path, settings={"IN": "incoming", **(settings or {})})


def test_indexing_resolves_names_and_skips_what_is_not_emulated(tmp_path: Path):
    host = _app(
        tmp_path,
        _TRIGGER + "@app.queue_output(arg_name='out', queue_name='Results', connection='Other')\n"
        "def handle(msg: func.QueueMessage, out: func.Out[str], context: func.Context) -> None:\n"
        "    pass\n"
        "@app.timer_trigger(arg_name='timer', schedule='0 * * * * *')\n"
        "def tick(timer: func.TimerRequest) -> None: ...\n"
        + _TRIGGER.replace("%IN%", "second")
        + "def disabled(msg: func.QueueMessage) -> None: ...\n",
        settings={"AzureWebJobs.disabled.Disabled": "true"},
    )
    (function,) = host.functions
    assert function.name == "handle"
    assert function.queue_name == "incoming"
    assert function.poison_queue_name == "incoming-poison"
    assert [(o.arg_name, o.queue_name, o.connection) for o in function.outputs] == [
        ("out", "results", "Other")  # the host lower-cases queue names
    ]
    assert function.context_arg == "context"
    assert not function.is_async


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_TRIGGER + "def f(msg: func.QueueMessage, extra) -> None: ...\n", "no binding"),
        (_TRIGGER + "def f(msg: str) -> None: ...\n", "only binds func.QueueMessage"),
        (
            _TRIGGER + "@app.queue_output(arg_name='out', queue_name='outq', connection='C')\n"
            "def f(msg: func.QueueMessage, out: str) -> None: ...\n",
            "func.Out",
        ),
        (
            _TRIGGER + "@app.blob_output(arg_name='out', path='c/b', connection='C')\n"
            "def f(msg: func.QueueMessage, out: func.Out[str]) -> None: ...\n",
            "not emulated",
        ),
        (
            _TRIGGER.replace("%IN%", "%NOT_SET%") + "def f(msg: func.QueueMessage) -> None: ...\n",
            "%NOT_SET%",
        ),
        (_TRIGGER.replace("%IN%", "Bad_Name") + "def f(msg) -> None: ...\n", "valid queue name"),
        ("other = func.FunctionApp()\n", "more than one FunctionApp"),
        (
            _TRIGGER + "@app.queue_output(arg_name='out', queue_name='outq', connection='C')\n"
            "def f(msg: func.QueueMessage, out: func.Out[list[str]]) -> None: ...\n",
            "typing.List",
        ),
    ],
)
def test_indexing_refuses_what_the_worker_refuses(tmp_path: Path, body: str, message: str):
    with pytest.raises(FunctionHostError, match=message):
        _app(tmp_path, body).load()


def test_a_script_without_an_app_is_refused(tmp_path: Path):
    (tmp_path / "function_app.py").write_text("x = 1\n")
    with pytest.raises(FunctionHostError, match="no FunctionApp"):
        LocalFunctionsHost(tmp_path).load()


def test_two_apps_with_the_same_script_name_load_side_by_side(tmp_path: Path):
    first, second = tmp_path / "one", tmp_path / "two"
    for folder, queue in ((first, "q-one"), (second, "q-two")):
        folder.mkdir()
        (folder / "function_app.py").write_text(
            _HEADER + _TRIGGER.replace("%IN%", queue) + "def f(msg) -> None: ...\nMARK = 1\n"
        )
    one, two = LocalFunctionsHost(first), LocalFunctionsHost(second)
    assert one.functions[0].queue_name == "q-one"
    assert two.functions[0].queue_name == "q-two"
    assert one.module is not two.module


# -- app-setting overrides of host.json ------------------------------------------------------

_HANDLER = _TRIGGER + "def handle(msg: func.QueueMessage) -> None:\n    pass\n"


def test_app_settings_override_host_json_as_in_azure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "extensions": {
                    "queues": {
                        "maxDequeueCount": 9,
                        "batchSize": 2,
                        "visibilityTimeout": "00:01:00",
                    }
                },
            }
        )
    )
    # Set through the environment (a settings source too), so the test leaves it as it was.
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__queues__maxDequeueCount", "3")
    # .NET configuration keys are case-insensitive, the ":" spelling included.
    monkeypatch.setenv("azurefunctionsjobhost:EXTENSIONS:queues:VisibilityTimeout", "00:00:02")
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__queues__", "no key: ignored")
    host = _app(tmp_path, _HANDLER)
    assert host.options.max_dequeue_count == 3
    assert host.options.visibility_timeout == timedelta(seconds=2)
    assert host.options.batch_size == 2


def test_options_given_in_code_win_over_app_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__queues__batchSize", "4")
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__queues__maxDequeueCount", "2")
    (tmp_path / "function_app.py").write_text(_HEADER + _HANDLER)
    host = LocalFunctionsHost(tmp_path, settings={"IN": "incoming"}, host_options={"batchSize": 7})
    assert host.options.batch_size == 7
    assert host.options.max_dequeue_count == 2


def test_a_bad_app_setting_override_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AzureFunctionsJobHost__extensions__queues__batchSize", "many")
    with pytest.raises(FunctionHostError, match="batchSize"):
        _app(tmp_path, _HANDLER).load()
