"""Soak: thousands of hires through every fault at once, on several hosts; counts defects.

    .venv/bin/python -m benchmarks.soak                          # 10,000 hires, both behaviours
    .venv/bin/python -m benchmarks.soak --hires 300 --kill-every 150 --hang-rate 0   # short
    .venv/bin/python -m benchmarks.soak --hires 3000 --rate-limit 600 --fault-rate 0 \\
        --kill-every 0                                           # throttling across instances
    .venv/bin/python -m benchmarks.soak --mix original           # issue 17's mix: half without
                                                                 # immutableId, 3 customers

N local Functions hosts (separate processes) share one Azurite queue. The Partner Center,
Entra ID and Key Vault stand-ins run in this process with seeded random faults on every
endpoint (429 with Retry-After, 500, 503, dropped connections, creates applied whose answer is
lost, and the occasional hang past the client's timeout). The workload mixes valid hires with
HR duplicates (back to back and later, some changed), invalid events, bodies that are not
events, customers without permission, UPNs held by other people and UPNs the same person
already holds (already_exists, no password). Every K outcomes one host
is killed with SIGKILL and replaced. Once the queue is drained the tool reads every outcome,
poison copy, user, secret and log line and counts what went wrong. Exit status 1 on any
defect (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import QueueClient, QueueMessage

from benchmarks.countingproxy import CountingProxy
from benchmarks.hosts import HostProcess
from devtools.azurite import AzuriteQueue, connection_string, start_azurite_queue
from devtools.standins import Domain, Fault, StandInStack
from devtools.standins.ratelimit import RateLimit
from shared.domain.passwords import fingerprint, secret_name_for

Kind = Literal["normal", "returning", "permission", "conflict", "invalid", "unreadable"]
RequestIds = Literal["remembered", "forgotten"]
SUCCESS = {"created", "already_exists", "restored"}
# Events a correct product makes a success of: a new hire, or the same person from before.
VALID_KINDS = frozenset({"normal", "returning"})
REQUEST_QUEUE = "soak-requests"
RESULT_QUEUE = "soak-results"
POISON_QUEUE = f"{REQUEST_QUEUE}-poison"
LEDGER_TABLE = "soakledger"
CREATE_ROUTE = "POST /v1/customers/{id}/users"
# The Partner Center client's read timeout is 30 s: a hang must outlast it.
DEFAULT_HANG_SECONDS = 31.0


@dataclass(frozen=True)
class SoakConfig:
    hires: int = 10_000
    hosts: int = 3
    kill_every: int = 2_000  # outcomes between two SIGKILLs; 0: never
    fault_rate: float = 0.22  # share of calls to every stand-in that fail
    hang_rate: float = 0.002  # share of calls that hang past the client's timeout
    hang_seconds: float = DEFAULT_HANG_SECONDS
    request_ids: RequestIds = "remembered"
    seed: int = 1
    lease_seconds: int = 20  # the hosts' message lease, so a killed host's messages come back
    visibility_timeout: str = "00:00:02"  # between deliveries (host.json says 60 s)
    rate_limit: int | None = None  # Partner Center creates per minute
    rate_limit_scope: Literal["partner", "customer"] = "partner"
    drain_timeout: float = 3600.0
    keep_logs: Path | None = None
    # "gentle": three quarters of the events carry immutableId, one customer per 1,000 hires;
    # "original": half carry none and every hire goes to one of three customers, so they grow
    # to thousands of users (the mix issue 17 says to meet).
    mix: Literal["gentle", "original"] = "gentle"
    upn_lookup: str | None = None  # UPN_LOOKUP for the hosts; None: the app's default
    # Customers (of the working ones, from the last) whose Graph answers 403
    # Authorization_IdentityNotFound: with UPN_LOOKUP=auto their look-ups fall back.
    unconsented: int = 0
    verbose: bool = True


@dataclass
class Hire:
    """One event as HR publishes it, and what a correct product must make of it."""

    kind: Kind
    event_id: str | None
    body: bytes
    customer: str | None
    upns: set[str] = field(default_factory=set)  # lower case; a changed republish adds one
    back_to_back: int = 0  # extra copies published right after the first
    later: list[bytes] = field(default_factory=list)  # republished once half is done
    secrets: list[str] = field(default_factory=list)  # passwords HR wrongly sent


@dataclass
class Customers:
    working: list[tuple[str, str]]  # (tenant id, domain)
    no_permission: tuple[str, str]


@dataclass
class Report:
    config: SoakConfig
    figures: dict[str, Any] = field(default_factory=dict)
    defects: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    lines: list[str] = field(default_factory=list)

    def defect(self, name: str, example: str | None = None) -> None:
        self.defects[name] = self.defects.get(name, 0) + 1
        if example is not None and len(self.examples[name]) < 5:
            self.examples[name].append(example)

    @property
    def clean(self) -> bool:
        return not any(self.defects.values())

    def say(self, text: str) -> None:
        self.lines.append(text)
        if self.config.verbose:
            print(text, flush=True)


DEFECTS = (
    "not drained",
    "lost",
    "hires with more than one user",
    "outcomes whose password secret does not hold the user's password",
    "outcomes naming a user that does not exist",
    "successes without a password secret",
    "outcomes contradicting each other",
    "successes poisoned",
    "wrong verdicts",
    "more than 5 % of valid hires got no user",
    "events left to the host's poison copy",
    "secrets in outcomes",
    "secrets in poison copies",
    "secrets in logs",
)


# -- the workload ---------------------------------------------------------------------------


# Most HR systems send an employee id (immutableId). A hire without one costs a look-up of
# the customer's whole user list before its create (one request per 100 users), so the
# share without it and the users per customer set how fast a run goes: with half the
# events lacking one and 10,000 hires over three customers, a run slowed to under 4 hires/s
# after 5,000 (docs/benchmarks.md). Each customer gets about this many hires.
IMMUTABLE_ID_SHARE = 0.75
HIRES_PER_CUSTOMER = 1_000
# The original mix (issue 17): half the events without immutableId, three customers.
ORIGINAL_IMMUTABLE_ID_SHARE = 0.5
ORIGINAL_CUSTOMERS = 3


def immutable_id_share(config: SoakConfig) -> float:
    return ORIGINAL_IMMUTABLE_ID_SHARE if config.mix == "original" else IMMUTABLE_ID_SHARE


def customer_count(config: SoakConfig) -> int:
    if config.mix == "original":
        return ORIGINAL_CUSTOMERS
    return max(3, -(-config.hires // HIRES_PER_CUSTOMER))


def build_workload(config: SoakConfig, customers: Customers) -> list[Hire]:
    rng = random.Random(config.seed)
    share = immutable_id_share(config)
    hires: list[Hire] = []
    for number in range(config.hires):
        roll = rng.random()
        if roll < 0.04:
            hires.append(_invalid(rng, config.seed, number, customers, share))
        elif roll < 0.05:
            hires.append(_unreadable(rng, number))
        elif roll < 0.09:
            tenant, domain = customers.no_permission
            hires.append(_hire(rng, config.seed, number, "permission", tenant, domain, share))
        elif roll < 0.13:
            tenant, domain = rng.choice(customers.working)
            hires.append(_hire(rng, config.seed, number, "conflict", tenant, domain, share))
        elif roll < 0.15:
            # The same person already holds the UPN (made an hour before, same immutableId):
            # already_exists with no password, also after a create whose answer was lost.
            tenant, domain = rng.choice(customers.working)
            hires.append(_hire(rng, config.seed, number, "returning", tenant, domain, 1.0))
        else:
            tenant, domain = rng.choice(customers.working)
            hire = _hire(rng, config.seed, number, "normal", tenant, domain, share)
            duplicate = rng.random()
            if duplicate < 0.08:
                hire.back_to_back = rng.choice((1, 1, 2))
            elif duplicate < 0.14:
                hire.later.append(_republished(rng, hire))
            hires.append(hire)
    return hires


def _event(
    rng: random.Random,
    seed: int,
    number: int,
    tenant: str,
    domain: str,
    share: float = IMMUTABLE_ID_SHARE,
) -> dict[str, Any]:
    user: dict[str, Any] = {
        "userPrincipalName": f"soak{seed}.hire{number}@{domain}",
        "firstName": "Soak",
        "lastName": f"Hire{number}",
        "displayName": f"Soak Hire{number}",
        "usageLocation": rng.choice(("US", "GB", "DE", "NL", "FR", "JP")),
    }
    if rng.random() < share:
        user["immutableId"] = f"S{seed}-{number}"
    event: dict[str, Any] = {
        "schemaVersion": rng.choice(("1.0", "1.0", "1.1")),
        "eventId": f"soak-{seed}-{number:06d}",
        "customerTenantId": tenant,
        "user": user,
    }
    if rng.random() < 0.5:
        event["correlationId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return event


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _hire(
    rng: random.Random,
    seed: int,
    number: int,
    kind: Kind,
    tenant: str,
    domain: str,
    share: float = IMMUTABLE_ID_SHARE,
) -> Hire:
    event = _event(rng, seed, number, tenant, domain, share)
    return Hire(
        kind=kind,
        event_id=event["eventId"],
        body=_encode(event),
        customer=tenant,
        upns={event["user"]["userPrincipalName"].lower()},
    )


def _republished(rng: random.Random, hire: Hire) -> bytes:
    """HR publishes the same eventId again later: as it was, or changed."""
    event = json.loads(hire.body)
    change = rng.choice(("same", "same", "display name", "upn"))
    if change == "display name":
        event["user"]["displayName"] += " (updated)"
    elif change == "upn":
        local, _, domain = event["user"]["userPrincipalName"].partition("@")
        event["user"]["userPrincipalName"] = f"{local}.moved@{domain}"
        hire.upns.add(event["user"]["userPrincipalName"].lower())
    return _encode(event)


def _invalid(
    rng: random.Random,
    seed: int,
    number: int,
    customers: Customers,
    share: float = IMMUTABLE_ID_SHARE,
) -> Hire:
    tenant, domain = rng.choice(customers.working)
    event = _event(rng, seed, number, tenant, domain, share)
    secrets: list[str] = []
    flaw = rng.choice(("tenant", "missing", "password", "country", "schema"))
    if flaw == "tenant":
        event["customerTenantId"] = "not-a-guid"
    elif flaw == "missing":
        del event["user"]["lastName"]
    elif flaw == "password":
        password = f"Hr{rng.getrandbits(64):016x}!Pw"
        event["user"]["password"] = password
        secrets.append(password)
    elif flaw == "country":
        event["user"]["usageLocation"] = "ZZ"
    else:
        event["schemaVersion"] = "2.0"
    return Hire(
        kind="invalid",
        event_id=event["eventId"],
        body=_encode(event),
        customer=None,
        secrets=secrets,
    )


def _unreadable(rng: random.Random, number: int) -> Hire:
    body = rng.choice(
        (
            f"not json {number}".encode(),
            f"[{number}, 2, 3]".encode(),
            b'{"eventId": "cut' + str(number).encode(),
            bytes([0xFF, 0xFE]) + str(number).encode(),
        )
    )
    return Hire(kind="unreadable", event_id=None, body=body, customer=None)


# -- the stack ------------------------------------------------------------------------------


def seed_stack(stack: StandInStack, config: SoakConfig, hires_seed: int) -> tuple[str, Customers]:
    rng = random.Random(hires_seed)
    partner = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    stack.seed_partner(partner)
    working = []
    count = customer_count(config)
    names = ["contoso", "fabrikam", "northwind"] + [f"customer{n}" for n in range(4, count + 1)]
    for name in names[:count]:
        tenant = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        domain = f"{name}{hires_seed}.onmicrosoft.com"
        stack.partner_center.add_customer(tenant, [Domain(domain)])
        working.append((tenant, domain))
    for tenant, _ in working[len(working) - config.unconsented :] if config.unconsented else []:
        stack.graph.set_consent(tenant, "identity_not_found")
    locked = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    locked_domain = f"tailspin{hires_seed}.onmicrosoft.com"
    stack.partner_center.add_customer(locked, [Domain(locked_domain)], gdap=False)
    stack.partner_center.config.idempotent_request_ids = config.request_ids == "remembered"
    return partner, Customers(working, (locked, locked_domain))


def seed_other_people(stack: StandInStack, hires: Iterable[Hire]) -> None:
    """Someone else already holds the UPN of every conflict hire; the same person, made an
    hour ago, holds the UPN of every returning hire."""
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for hire in hires:
        if hire.kind == "returning" and hire.customer:
            user = json.loads(hire.body)["user"]
            stack.partner_center.add_user(
                hire.customer,
                {
                    "userPrincipalName": user["userPrincipalName"],
                    "firstName": user["firstName"],
                    "lastName": user["lastName"],
                    "displayName": user["displayName"],
                    "immutableId": user["immutableId"],
                    "createdDateTime": an_hour_ago,
                },
            )
        if hire.kind == "conflict" and hire.customer:
            upn = next(iter(hire.upns))
            stack.partner_center.add_user(
                hire.customer,
                {
                    "userPrincipalName": upn,
                    "firstName": "Other",
                    "lastName": "Person",
                    "displayName": "Other Person",
                    "immutableId": f"OTHER-{upn}",
                },
            )


def inject_faults(stack: StandInStack, config: SoakConfig) -> None:
    if config.hang_rate > 0:
        hangs = (Fault.hang(config.hang_seconds), Fault.apply_then_hang(config.hang_seconds))
        for offset, service in enumerate(stack.services.values()):
            service.faults.random(
                seed=config.seed * 31 + offset, rate=config.hang_rate, kinds=hangs
            )
    if config.fault_rate <= 0:
        return
    throttled = Fault.status(429, retry_after=1)
    common = (throttled, Fault.status(500), Fault.status(503), Fault.drop())
    # Partner Center also applies some creates and loses the answer.
    stack.partner_center.faults.random(
        seed=config.seed * 7 + 1,
        rate=config.fault_rate,
        kinds=(*common, Fault.apply_then_drop(), Fault.apply_then_drop()),
    )
    stack.key_vault.faults.random(seed=config.seed * 7 + 2, rate=config.fault_rate, kinds=common)
    stack.entra.faults.random(seed=config.seed * 7 + 3, rate=config.fault_rate, kinds=common)
    # Graph is called only where the decision looks a UPN up there (UPN_LOOKUP).
    stack.graph.faults.random(seed=config.seed * 7 + 4, rate=config.fault_rate, kinds=common)


MIN_CLAIM_SECONDS = 5


def claim_seconds(lease_seconds: int) -> int:
    if lease_seconds <= MIN_CLAIM_SECONDS:
        raise ValueError(f"the lease must be longer than {MIN_CLAIM_SECONDS} s, the shortest claim")
    return max(MIN_CLAIM_SECONDS, lease_seconds // 2)


def host_settings(
    stack: StandInStack, partner: str, storage: str, config: SoakConfig
) -> dict[str, str]:
    overrides = "AzureFunctionsJobHost__extensions__queues__"
    return {
        **stack.function_settings(partner),
        # Loopback only: the CA alone is enough, and much cheaper per new connection.
        "REQUESTS_CA_BUNDLE": str(stack.ca_file),
        "AzureWebJobsStorage": storage,
        "REQUEST_QUEUE_NAME": REQUEST_QUEUE,
        "RESULT_QUEUE_NAME": RESULT_QUEUE,
        "HIRE_LEDGER_TABLE": LEDGER_TABLE,
        # A claim must lapse before the lease the hosts hold a message for (the app takes 5 s
        # at least).
        "HIRE_CLAIM_SECONDS": str(claim_seconds(config.lease_seconds)),
        f"{overrides}visibilityTimeout": config.visibility_timeout,
        f"{overrides}maxPollingInterval": "00:00:00.500",
        **({"UPN_LOOKUP": config.upn_lookup} if config.upn_lookup else {}),
    }


# -- running --------------------------------------------------------------------------------


def _b64(body: bytes) -> str:
    return base64.b64encode(body).decode("ascii")


# Azurite's in-memory queue slows down with its length: HR publishes as the hires come, so
# the backlog is kept at a few hundred messages instead of all of them at once.
MAX_BACKLOG = 600
CHUNK = 200


def publish(queue: QueueClient, bodies: Sequence[bytes]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        for start in range(0, len(bodies), CHUNK):
            while queue_length(queue) > MAX_BACKLOG:
                time.sleep(0.5)
            chunk = bodies[start : start + CHUNK]
            list(pool.map(lambda body: queue.send_message(_b64(body)), chunk))


def first_round(hires: Sequence[Hire]) -> list[bytes]:
    bodies: list[bytes] = []
    for hire in hires:
        bodies.extend([hire.body] * (1 + hire.back_to_back))
    return bodies


def queue_length(queue: QueueClient) -> int:
    return queue.get_queue_properties().approximate_message_count or 0


def drain_queue(queue: QueueClient, limit: int | None = None) -> Iterator[QueueMessage]:
    """Messages received and deleted, until the queue looks empty (or ``limit``)."""
    taken = 0
    while limit is None or taken < limit:
        batch = list(queue.receive_messages(messages_per_page=32, max_messages=32))
        if not batch:
            return
        for message in batch:
            queue.delete_message(message)
            taken += 1
            yield message


class Collector:
    """Reads a queue as its consumer would, while the run goes on: the queue stays short
    (Azurite slows down with its length) and the messages are kept here, with the time each
    was put on the queue."""

    def __init__(self, queue: QueueClient) -> None:
        self._queue = queue
        self._lock = threading.Lock()
        self._texts: list[str] = []
        self._inserted: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                taken = self._take()
            except AzureError:
                taken = 0
            if not taken:
                self._stop.wait(0.5)

    def _take(self) -> int:
        messages = list(drain_queue(self._queue, limit=320))
        with self._lock:
            self._texts.extend(str(message.content) for message in messages)
            self._inserted.extend(
                message.inserted_on.timestamp() if message.inserted_on else time.time()
                for message in messages
            )
        return len(messages)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._texts)

    def finish(self) -> list[str]:
        """Stop, then take what is left."""
        self._stop.set()
        self._thread.join(timeout=60)
        while self._take():
            pass
        with self._lock:
            return list(self._texts)

    def progress(self) -> list[tuple[float, int]]:
        """(when, messages so far) at each message, by the time the queue took it in: the
        producers' clock, which no pause of this process's polling can stretch."""
        with self._lock:
            times = sorted(self._inserted)
        return [(at, count) for count, at in enumerate(times, start=1)]


def run_soak(config: SoakConfig, azurite: AzuriteQueue | None = None) -> Report:
    report = Report(config)
    started = time.monotonic()
    with ExitStack() as resources:
        if azurite is None:
            azurite = resources.enter_context(start_azurite_queue())
        proxy = resources.enter_context(CountingProxy(azurite.host, azurite.table_port))
        storage = connection_string(azurite.host, azurite.port, proxy.port)
        stack = resources.enter_context(StandInStack.start())
        log_dir = Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))

        partner, customers = seed_stack(stack, config, config.seed)
        hires = build_workload(config, customers)
        seed_other_people(stack, hires)
        limiter = None
        if config.rate_limit:
            limiter = RateLimit(config.rate_limit, scope=config.rate_limit_scope)
            stack.partner_center.rate_limit = limiter
        inject_faults(stack, config)
        settings = host_settings(stack, partner, storage, config)

        requests_queue = QueueClient.from_connection_string(storage, REQUEST_QUEUE)
        results_queue = QueueClient.from_connection_string(storage, RESULT_QUEUE)
        poison_queue = QueueClient.from_connection_string(storage, POISON_QUEUE)
        for queue in (requests_queue, results_queue, poison_queue):
            with suppress(ResourceExistsError):
                queue.create_queue()

        collected, poisoned = Collector(results_queue), Collector(poison_queue)
        hosts: list[HostProcess] = []
        generation = 0

        def start_host() -> None:
            nonlocal generation
            generation += 1
            hosts.append(
                HostProcess.start(
                    f"host-{generation:02d}",
                    settings,
                    log_dir,
                    lease_seconds=config.lease_seconds,
                )
            )

        try:
            for _ in range(config.hosts):
                start_host()
            report.say(
                f"soak: {config.hires} hires, {config.hosts} hosts, MS-RequestId "
                f"{config.request_ids}, faults {config.fault_rate:.0%} + hangs "
                f"{config.hang_rate:.1%}, kill every {config.kill_every or 'never'}, "
                f"seed {config.seed}, {config.mix} mix"
                + (f", UPN_LOOKUP={config.upn_lookup}" if config.upn_lookup else "")
                + (f", {config.unconsented} without Graph consent" if config.unconsented else "")
                + (f", limit {config.rate_limit}/min" if limiter else "")
            )
            # Published from another thread, so hosts are killed on time meanwhile (a daemon:
            # an interrupted run must not wait for it).
            first: Future[None] = Future()

            def publish_first_round() -> None:
                try:
                    publish(requests_queue, first_round(hires))
                except BaseException as error:
                    first.set_exception(error)
                else:
                    first.set_result(None)

            threading.Thread(target=publish_first_round, name="soak-publisher", daemon=True).start()
            later = [body for hire in hires for body in hire.later]
            # Where the last pace window falls: just before the late duplicates are published.
            first_round_events = len(first_round(hires))
            late_from: float | None = None
            published_later = not later
            next_kill = config.kill_every or None
            kills = 0
            killed_at: list[int] = []  # outcomes so far at each kill
            quiet = 0
            deadline = time.monotonic() + config.drain_timeout
            rng = random.Random(config.seed * 13)
            last_progress = 0.0
            while True:
                produced = collected.count + queue_length(results_queue)
                if not published_later and produced >= config.hires // 2 and first.done():
                    late_from = time.time()
                    publish(requests_queue, later)
                    published_later = True
                if next_kill is not None and produced >= next_kill:
                    if kill_allowed(
                        produced, hires=config.hires, first_round_events=first_round_events
                    ):
                        victim = rng.choice([host for host in hosts if host.alive])
                        victim.kill()
                        kills += 1
                        killed_at.append(produced)
                        report.say(f"  {produced} outcomes: killed {victim.name} (SIGKILL)")
                        start_host()
                    else:
                        report.say(f"  {produced} outcomes: no kill inside a pace window")
                    next_kill += config.kill_every
                waiting = queue_length(requests_queue)
                if first.done():
                    first.result()  # a publishing failure ends the run here
                finished = published_later and first.done()
                quiet = quiet + 1 if finished and waiting == 0 else 0
                if quiet >= 3:
                    break
                if time.monotonic() > deadline:
                    report.defect("not drained", f"{waiting} messages left")
                    break
                if time.monotonic() - last_progress > 15:
                    last_progress = time.monotonic()
                    report.say(
                        f"  {time.monotonic() - started:6.0f} s: {produced} outcomes, "
                        f"{waiting} requests waiting"
                    )
                time.sleep(1.0)
            elapsed = time.monotonic() - started
        finally:
            for host in hosts:
                if host.alive:
                    host.stop()
        if config.keep_logs:
            config.keep_logs.mkdir(parents=True, exist_ok=True)
            for host in hosts:
                shutil.copy(host.log_path, config.keep_logs / host.log_path.name)

        outcomes = [_decode_outcome(text) for text in collected.finish()]
        poison = [_decode_poison(text) for text in poisoned.finish()]
        logs = {host.name: host.log_text() for host in hosts}
        # Timed by when each outcome reached the result queue, not by the loop's samples: a
        # call of the loop's that waits out a storage retry (15 s and more) left gaps in them.
        report.figures.update(
            pace(collected.progress(), config.hires, killed_at, late_from=late_from)
        )
        report.figures.update(
            elapsed=elapsed,
            kills=kills,
            hosts_started=len(hosts),
            host_cpu=sum(host.cpu_seconds() for host in hosts),
        )
        check(report, stack, hires, outcomes, poison, logs, proxy.total, limiter)
    return report


def pace_window(hires: int) -> int:
    """Outcomes in each of the two windows ``pace`` compares."""
    return max(1, min(1000, hires // 3))


def kill_allowed(produced: int, *, hires: int, first_round_events: int) -> bool:
    """Whether a host may be killed after ``produced`` outcomes without landing in a pace
    window. A kill costs the outcomes around it a host's start and the lease of the killed
    host's messages (about a window's worth at the default rates); with a kill in one window
    and none in the other, the pace compared kill placement, not customer growth (session 6:
    -41 % and +33 % from two runs of one build). So no kill in the first window, nor within a
    window of the last one, which ends when the late duplicates are published (see ``pace``):
    about ``MAX_BACKLOG`` outcomes before the first round's last."""
    window = pace_window(hires)
    # The late duplicates go out once the first round is published (the publisher keeps
    # MAX_BACKLOG waiting) and half the hires have an outcome.
    last_end = max(hires // 2, first_round_events - MAX_BACKLOG)
    if last_end < 2 * window + 1:
        return True  # too short a run for a pace figure: kills anywhere
    return window < produced < last_end - 2 * window


def pace(
    progress: Sequence[tuple[float, int]],
    hires: int,
    kills: Sequence[int] = (),
    *,
    late_from: float | None = None,
) -> dict[str, float]:
    """Outcomes per second over the first and the last window of min(1,000, a third of the
    hires) outcomes, from (time, outcomes so far) at each outcome: whether the run slows down
    as the customers grow (issue 17: the last 1,000 within 20 % of the first 1,000). Each
    rate is over ``window`` intervals between outcomes. ``kills`` (outcomes so far at each
    host killed) are counted per window: a kill costs its window a host's start and the lease
    of its messages, so the soak kills no host in or just before either (``kill_allowed``).

    The last window ends at the last outcome before ``late_from``, the time the late HR
    duplicates were published: they come after the whole first round and most cost one ledger
    read, so the end phase has another mix and its own rhythm (session 7, two runs: at the
    moment they were published no host logged anything for about 10 s, then the queue emptied
    at 76 outcomes/s; the cause of the pause is not known). Both windows then hold the same
    mix: the first round's events. Without ``late_from`` it ends at 95 % of the outcomes (the
    final few are the stragglers of retries and killed hosts: the drain, not the pace)."""
    window = pace_window(hires)
    if late_from is not None:
        last = max((produced for at, produced in progress if at < late_from), default=0)
    else:
        last = int(progress[-1][1] * 0.95) if progress else 0
    if last < 2 * window + 1:
        return {}

    def reached(count: int) -> float:
        return next(at for at, produced in progress if produced >= count)

    def rate_between(start: int, end: int) -> float:
        return (end - start) / max(reached(end) - reached(start), 1e-9)

    # The same comparison over the first and the last third of the outcomes up to ``last``: a
    # window of 1,000 outcomes lasts about 45 s here, and pauses of 10-20 s in which every
    # host waits on Azurite at once come every minute or two wherever they fall, so one pause
    # more or less in a window moves its rate by a quarter. Thirds average over several.
    third = last // 3
    return {
        "pace window": window,
        "pace first": rate_between(1, window + 1),
        "pace last": rate_between(last - window, last),
        "pace kills first": sum(1 for at in kills if 1 <= at <= window + 1),
        "pace kills last": sum(1 for at in kills if last - window <= at <= last),
        "pace third": third,
        "pace first third": rate_between(1, third + 1),
        "pace last third": rate_between(last - third, last),
    }


# -- checking -------------------------------------------------------------------------------


@dataclass
class Poisoned:
    raw: bytes
    document: dict[str, Any] | None

    @property
    def event_id(self) -> str | None:
        value = self.document.get("eventId") if self.document else None
        return value if isinstance(value, str) else None

    @property
    def category(self) -> str:
        if self.document is None:
            return "not-an-event"
        failure = self.document.get("lastFailure")
        if not isinstance(failure, dict):
            return "host-poisoned"
        return str(failure.get("category"))


def _decode_outcome(text: str) -> dict[str, Any]:
    try:
        document = json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        document = json.loads(text)
    return document if isinstance(document, dict) else {"unreadable": text}


def _decode_poison(text: str) -> Poisoned:
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raw = text.encode("utf-8", errors="replace")
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    return Poisoned(raw, document if isinstance(document, dict) else None)


def check(
    report: Report,
    stack: StandInStack,
    hires: Sequence[Hire],
    outcomes: Sequence[dict[str, Any]],
    poison: Sequence[Poisoned],
    logs: dict[str, str],
    table_calls: int,
    limiter: RateLimit | None,
) -> None:
    for name in DEFECTS:
        report.defects.setdefault(name, 0)
    by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for outcome in outcomes:
        if isinstance(outcome.get("eventId"), str):
            by_event[outcome["eventId"]].append(outcome)
    poison_by_event: dict[str, list[Poisoned]] = defaultdict(list)
    for copy in poison:
        if copy.event_id is not None:
            poison_by_event[copy.event_id].append(copy)
    unreadable_outcomes = sum(1 for outcome in outcomes if outcome.get("eventId") is None)
    poisoned_raw = Counter(copy.raw for copy in poison)

    # Users, by the hire whose UPN they carry.
    hire_by_upn = {upn: hire for hire in hires for upn in hire.upns if hire.kind == "normal"}
    users_by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    users_by_id: dict[str, tuple[str, dict[str, Any]]] = {}
    customers = {hire.customer for hire in hires if hire.customer}
    for customer in customers:
        for user in stack.partner_center.users(customer):
            users_by_id[user["id"].lower()] = (customer, user)
            owner = hire_by_upn.get(user["userPrincipalName"].lower())
            if owner is not None and owner.event_id is not None:
                users_by_event[owner.event_id].append(user)

    expected_category = {"permission": "permission", "conflict": "conflict"}
    unreadable_bodies = [hire.body for hire in hires if hire.kind == "unreadable"]
    for hire in hires:
        if hire.event_id is None:
            if poisoned_raw[hire.body] == 0:
                report.defect("lost", f"unreadable body {hire.body[:20]!r} has no poison copy")
            continue
        event_outcomes = by_event.get(hire.event_id, [])
        copies = poison_by_event.get(hire.event_id, [])
        users = users_by_event.get(hire.event_id, [])
        if not event_outcomes and not copies:
            report.defect("lost", hire.event_id)
        if len(users) > 1:
            report.defect("hires with more than one user", hire.event_id)
        if any(copy.category == "host-poisoned" for copy in copies):
            report.defect("events left to the host's poison copy", hire.event_id)
        successes = [o for o in event_outcomes if o.get("status") in SUCCESS]
        failures = [o for o in event_outcomes if o.get("status") not in SUCCESS]
        if users and copies:
            report.defect(
                "successes poisoned",
                f"{hire.event_id}: user exists, poisoned as {copies[0].category}",
            )
        digests: set[str] = set()
        user_ids: set[str] = set()
        for outcome in successes:
            user_ids.add(str(outcome.get("userId")).lower())
            if hire.kind == "returning":
                _returning_check(report, hire, outcome, users_by_id)
                continue
            digest = _password_check(report, stack, hire, outcome, users_by_id)
            if digest:
                digests.add(digest)
        rejected = [o for o in failures if o.get("status") == "rejected"]
        if len(user_ids) > 1 or len(digests) > 1 or (successes and rejected):
            report.defect(
                "outcomes contradicting each other",
                f"{hire.event_id}: {sorted(str(o.get('status')) for o in event_outcomes)}, "
                f"{len(user_ids)} user ids, {len(digests)} passwords",
            )
        _check_verdict(report, hire, successes, failures, expected_category)
    valid = sum(1 for hire in hires if hire.kind in VALID_KINDS)
    if report.figures.get("valid hires that gave up (failed)", 0) > 0.05 * valid:
        report.defect("more than 5 % of valid hires got no user")
    report.figures["unreadable outcomes"] = unreadable_outcomes
    if unreadable_outcomes < len(unreadable_bodies):
        for _ in range(len(unreadable_bodies) - unreadable_outcomes):
            report.defect("lost", "a body that is not an event got no outcome")

    _check_secrets(report, stack, hires, outcomes, poison, logs)
    _figures(report, stack, hires, outcomes, poison, table_calls, limiter)


def _returning_check(
    report: Report,
    hire: Hire,
    outcome: dict[str, Any],
    users_by_id: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    """The same person from before: already_exists, naming that user, with no password (a
    password of this hire's would be one that account does not have)."""
    user_id = str(outcome.get("userId") or "").lower()
    found = users_by_id.get(user_id)
    if found is None or found[1]["userPrincipalName"].lower() not in hire.upns:
        report.defect("outcomes naming a user that does not exist", f"{hire.event_id}: {user_id}")
    elif outcome.get("status") != "already_exists" or outcome.get("initialPasswordSecretId"):
        report.defect(
            "wrong verdicts",
            f"{hire.event_id}: the same person from before reported {outcome.get('status')}"
            + (" with an initial password" if outcome.get("initialPasswordSecretId") else ""),
        )


def _password_check(
    report: Report,
    stack: StandInStack,
    hire: Hire,
    outcome: dict[str, Any],
    users_by_id: dict[str, tuple[str, dict[str, Any]]],
) -> str | None:
    user_id = str(outcome.get("userId") or "").lower()
    found = users_by_id.get(user_id)
    if found is None or found[1]["userPrincipalName"].lower() not in hire.upns:
        report.defect("outcomes naming a user that does not exist", f"{hire.event_id}: {user_id}")
        return None
    secret_id = outcome.get("initialPasswordSecretId")
    if not secret_id:
        report.defect("successes without a password secret", f"{hire.event_id}")
        return None
    value = _secret_value(stack, str(secret_id))
    if value is None or not stack.partner_center.user_has_password(found[0], user_id, value):
        report.defect(
            "outcomes whose password secret does not hold the user's password",
            f"{hire.event_id}: {outcome.get('status')}, "
            + _versions_note(stack, found[0], user_id, str(secret_id)),
        )
        return None
    return fingerprint(value)


def _versions_note(stack: StandInStack, customer: str, user_id: str, secret_id: str) -> str:
    """Which version of the secret the outcome names, and which hold the user's password."""
    match = re.search(r"/secrets/([^/]+)/([^/?]+)", secret_id)
    if match is None:
        return "not a versioned secret id"
    versions = stack.key_vault.versions(match[1])
    named = [str(v["id"]).rstrip("/").endswith("/" + match[2]) for v in versions]
    right = [
        number + 1
        for number, version in enumerate(versions)
        if stack.partner_center.user_has_password(customer, user_id, str(version["value"]))
    ]
    where = f"version {named.index(True) + 1}" if any(named) else "a version that does not exist"
    return f"names {where} of {len(versions)}; the user's password is in {right or 'none'}"


def _secret_value(stack: StandInStack, secret_id: str) -> str | None:
    match = re.search(r"/secrets/([^/]+)/([^/?]+)", secret_id)
    if match is None:
        return None
    for version in stack.key_vault.versions(match[1]):
        if str(version["id"]).rstrip("/").endswith("/" + match[2]):
            return str(version["value"])
    return None


def _check_verdict(
    report: Report,
    hire: Hire,
    successes: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    expected_category: dict[str, str],
) -> None:
    rejected = {
        str((o.get("error") or {}).get("category"))
        for o in failures
        if o.get("status") == "rejected"
    }
    if hire.kind in VALID_KINDS:
        if rejected:
            report.defect(
                "wrong verdicts", f"{hire.event_id}: valid hire rejected {sorted(rejected)}"
            )
        elif not successes:
            # Transient failures outlasting every delivery end as "failed" with a poison copy to
            # replay: allowed under chaos, but counted (and too many means a broken run).
            name = "valid hires that gave up (failed)"
            report.figures[name] = report.figures.get(name, 0) + 1
        return
    wanted = expected_category.get(hire.kind, "invalid_event")
    if successes:
        report.defect("wrong verdicts", f"{hire.event_id}: {hire.kind} hire succeeded")
    elif rejected - {wanted}:
        report.defect("wrong verdicts", f"{hire.event_id}: {hire.kind} hire got {sorted(rejected)}")


# Secrets are searched for as substrings of runs of the characters they are made of.
def _secret_finder(secrets: set[str]) -> tuple[re.Pattern[str], dict[int, set[str]]]:
    alphabet = sorted({character for secret in secrets for character in secret})
    by_length: dict[int, set[str]] = defaultdict(set)
    for secret in secrets:
        by_length[len(secret)].add(secret)
    shortest = min(by_length) if by_length else 1
    pattern = re.compile("[" + "".join(re.escape(c) for c in alphabet) + f"]{{{shortest},}}")
    return pattern, by_length


def find_secrets(text: str, secrets: set[str]) -> int:
    """How many occurrences of any of ``secrets`` the text holds."""
    if not secrets:
        return 0
    pattern, by_length = _secret_finder(secrets)
    found = 0
    for run in pattern.finditer(text):
        token = run.group(0)
        for length, candidates in by_length.items():
            for start in range(len(token) - length + 1):
                if token[start : start + length] in candidates:
                    found += 1
    return found


def _all_secrets(stack: StandInStack, hires: Sequence[Hire]) -> set[str]:
    secrets: set[str] = set()
    # The app id is not a secret; the app secret and every refresh token version are.
    names = {"partner-center-app-secret", "partner-center-refresh-token"}
    names.update(secret_name_for(hire.event_id) for hire in hires if hire.event_id)
    for name in names:
        secrets.update(str(version["value"]) for version in stack.key_vault.versions(name))
    secrets.add(stack.key_vault.vault_client_secret)
    for hire in hires:
        secrets.update(hire.secrets)
    # Tokens the stand-ins issued (private state, read only here): bearer and refresh tokens.
    secrets.update(stack.partner_center._tokens._tokens)
    secrets.update(stack.entra._refresh_tokens)
    return {secret for secret in secrets if len(secret) >= 12}


def _check_secrets(
    report: Report,
    stack: StandInStack,
    hires: Sequence[Hire],
    outcomes: Sequence[dict[str, Any]],
    poison: Sequence[Poisoned],
    logs: dict[str, str],
) -> None:
    secrets = _all_secrets(stack, hires)
    report.figures["secrets searched for"] = len(secrets)
    outcome_text = "\n".join(json.dumps(outcome, ensure_ascii=False) for outcome in outcomes)
    poison_text = "\n".join(copy.raw.decode("utf-8", errors="replace") for copy in poison)
    for name, text in (
        ("secrets in outcomes", outcome_text),
        ("secrets in poison copies", poison_text),
        ("secrets in logs", "\n".join(logs.values())),
    ):
        count = find_secrets(text, secrets)
        if count:
            report.defects[name] = report.defects.get(name, 0) + count
    report.figures["log lines"] = sum(text.count("\n") for text in logs.values())


def _figures(
    report: Report,
    stack: StandInStack,
    hires: Sequence[Hire],
    outcomes: Sequence[dict[str, Any]],
    poison: Sequence[Poisoned],
    table_calls: int,
    limiter: RateLimit | None,
) -> None:
    count = len(hires)
    pc = stack.partner_center.counters
    kv = stack.key_vault.counters
    entra = stack.entra.counters
    report.figures.update(
        hires=count,
        messages=sum(1 + hire.back_to_back + len(hire.later) for hire in hires),
        kinds=Counter(hire.kind for hire in hires),
        outcomes=len(outcomes),
        statuses=Counter(str(outcome.get("status")) for outcome in outcomes),
        poison=Counter(copy.category for copy in poison),
        users_created=pc["users_created"],
        faults={
            name: sum(service.counters["faults_injected"].values())
            for name, service in stack.services.items()
        },
        calls={
            "Partner Center": sum(pc["calls"].values()),
            "Key Vault": sum(kv["calls"].values()),
            "Entra ID": sum(entra["calls"].values()),
            "Graph": sum(stack.graph.counters["calls"].values()),
            "tables": table_calls,
        },
        partner_center_routes=dict(pc["calls"]),
        key_vault_routes=dict(kv["calls"]),
    )
    creates = [r for r in stack.partner_center.requests if r.route == CREATE_ROUTE]
    report.figures["create calls"] = len(creates)
    report.figures["create calls answered 429"] = sum(1 for r in creates if r.status == 429)
    if limiter is not None:
        # Creates served per minute of wall time, from the first window's opening to the last
        # one's (the last is cut short by the end of the work), against the limit.
        windows = limiter.windows
        if len(windows) > 1:
            minutes = (windows[-1].opened - windows[0].opened) / 60.0
            served = sum(window.served for window in windows[:-1])
            report.figures["goodput"] = served / minutes / limiter.limit
        report.figures["windows"] = [(w.served, w.refused) for w in windows]


def _per_hire(calls: dict[str, int], hires: int) -> dict[str, float]:
    return {route: round(number / hires, 2) for route, number in calls.items()}


def render(report: Report) -> str:
    figures = report.figures
    count = max(1, int(figures.get("hires", 0)))
    lines = [
        f"hires                  {figures.get('hires')} ({dict(figures.get('kinds', {}))}), "
        f"{figures.get('messages')} messages published",
        f"time                   {figures.get('elapsed', 0):.0f} s; "
        f"{figures.get('kills')} hosts killed, {figures.get('hosts_started')} started; "
        f"host CPU {figures.get('host_cpu', 0):.0f} s",
        f"outcomes               {figures.get('outcomes')} {dict(figures.get('statuses', {}))}",
        f"poison copies          {sum(figures.get('poison', {}).values())} "
        f"by category {dict(figures.get('poison', {}))}",
        f"users created          {figures.get('users_created')}",
        f"faults injected        {figures.get('faults')}",
        "calls per hire         "
        + ", ".join(f"{name} {calls / count:.2f}" for name, calls in figures["calls"].items()),
        f"Partner Center routes  {_per_hire(figures['partner_center_routes'], count)}",
        f"Key Vault routes       {_per_hire(figures['key_vault_routes'], count)}",
        f"create calls           {figures.get('create calls')} "
        f"({figures.get('create calls answered 429')} answered 429)",
        f"secrets searched for   {figures.get('secrets searched for')} in outcomes, poison copies "
        f"and {figures.get('log lines')} log lines",
    ]
    if "pace first" in figures:
        change = figures["pace last"] / figures["pace first"] - 1
        lines.append(
            f"pace                   {figures['pace first']:.1f} outcomes/s over the first "
            f"{figures['pace window']:.0f}, {figures['pace last']:.1f} over the last "
            f"({change:+.0%}; target: within 20 %); hosts killed in them: "
            f"{figures['pace kills first']}, {figures['pace kills last']}"
        )
        steadier = figures["pace last third"] / figures["pace first third"] - 1
        lines.append(
            f"pace by thirds         {figures['pace first third']:.1f} outcomes/s over the first "
            f"{figures['pace third']:.0f}, {figures['pace last third']:.1f} over the last "
            f"({steadier:+.0%})"
        )
    if "valid hires that gave up (failed)" in figures:
        lines.append(
            f"gave up (failed)       {figures['valid hires that gave up (failed)']} valid hires "
            "(transient failures outlasted every delivery; replayable)"
        )
    if "windows" in figures and "goodput" not in figures:
        lines.append("goodput                not measured: the run fitted in one window")
    if "goodput" in figures:
        creates = max(1, int(figures.get("create calls", 0)))
        lines.append(
            f"goodput                {figures['goodput']:.0%} of the limit (creates served per "
            "minute until the last window); "
            f"{figures.get('create calls answered 429', 0) / creates:.1%} of creates answered "
            f"429; windows (served, refused) {figures['windows']}"
        )
    lines.append("defects:")
    for name in DEFECTS:
        value = report.defects.get(name, 0)
        lines.append(f"  {name:66} {value}")
        for example in report.examples.get(name, [])[:3]:
            lines.append(f"      e.g. {example}")
    lines.append("CLEAN" if report.clean else "DEFECTS FOUND")
    return "\n".join(lines)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    defaults = SoakConfig()
    parser.add_argument("--hires", type=int, default=defaults.hires)
    parser.add_argument("--hosts", type=int, default=defaults.hosts)
    parser.add_argument(
        "--kill-every", type=int, default=defaults.kill_every, help="outcomes; 0: never"
    )
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--hang-rate", type=float, default=defaults.hang_rate)
    parser.add_argument("--hang-seconds", type=float, default=defaults.hang_seconds)
    parser.add_argument(
        "--request-ids",
        choices=("remembered", "forgotten", "both"),
        default="both",
        help="whether Partner Center remembers MS-RequestId (both: two runs)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--lease-seconds", type=int, default=defaults.lease_seconds)
    parser.add_argument(
        "--rate-limit", type=int, default=None, help="Partner Center creates per minute"
    )
    parser.add_argument("--rate-limit-scope", choices=("partner", "customer"), default="partner")
    parser.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout)
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy host logs here")
    parser.add_argument(
        "--mix",
        choices=("gentle", "original"),
        default=defaults.mix,
        help="gentle: 3/4 with immutableId, a customer per 1,000 hires; original (issue 17): "
        "half without immutableId, three customers",
    )
    parser.add_argument(
        "--unconsented",
        type=int,
        default=0,
        help="customers whose Graph refuses the partner's app (403 IdentityNotFound)",
    )
    parser.add_argument(
        "--upn-lookup",
        choices=("auto", "graph", "partner-center"),
        default=None,
        help="UPN_LOOKUP for the hosts (default: the app's default)",
    )
    args = parser.parse_args(argv)
    # Ctrl-C or SIGTERM (also when started in the background) stops the hosts and Azurite.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    behaviours: list[RequestIds] = (
        ["remembered", "forgotten"] if args.request_ids == "both" else [args.request_ids]
    )
    failed = False
    for behaviour in behaviours:
        config = SoakConfig(
            hires=args.hires,
            hosts=args.hosts,
            kill_every=args.kill_every,
            fault_rate=args.fault_rate,
            hang_rate=args.hang_rate,
            hang_seconds=args.hang_seconds,
            request_ids=behaviour,
            seed=args.seed,
            lease_seconds=args.lease_seconds,
            rate_limit=args.rate_limit,
            rate_limit_scope=args.rate_limit_scope,
            drain_timeout=args.drain_timeout,
            keep_logs=args.keep_logs / behaviour if args.keep_logs else None,
            mix=args.mix,
            upn_lookup=args.upn_lookup,
            unconsented=args.unconsented,
        )
        report = run_soak(config)
        print(render(report), flush=True)
        failed = failed or not report.clean
        if config.rate_limit and (
            report.figures.get("goodput", 0) < 0.9
            or report.figures.get("create calls answered 429", 0)
            > 0.05 * max(1, report.figures.get("create calls", 0))
        ):
            print("throttling target missed (goodput >= 90%, <= 5% of creates answered 429)")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
