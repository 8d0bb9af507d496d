"""aei_agent - report an AI agent to an AEI server: heartbeats, decision traces, commands.

One file, standard library only (Python 3.11). The right thing is the default:

* a background thread sends a heartbeat every `heartbeat_interval` seconds with the status and
  metrics you set;
* `trace()` only queues a decision (with a decision_id made here, so that a retried batch stores
  nothing twice); a background thread sends the queue in batches of up to `batch_size`;
* every request is retried on connection errors, timeouts, 5xx and 429, with exponential backoff
  and full jitter, honouring `Retry-After`; other 4xx answers are not retried (they will not get
  better) and are reported;
* the queue is bounded (`queue_limit`): when it is full, new decisions are dropped, counted in
  `stats()["dropped"]` and logged - never silently;
* commands the server hands out in heartbeat answers are passed to `on_command`, each once,
  then acknowledged (POST .../commands/{id}/ack, retried like any request, and sent again
  with the same status if the server hands the command out again): `succeeded` with what the
  handler returned as the result, `rejected` if it raised CommandRejected, `failed` with the
  error if it raised anything else;
* pause, resume and terminate are obeyed by default: `paused` and `terminated` say where the
  agent stands, and `wait_if_paused()` (call it between steps of your work) blocks while the
  agent is paused and returns False once it is terminated.

    agent = Agent("127.0.0.1:3000", token, "researcher-1", name="Researcher")
    agent.start()
    agent.set_status("processing")
    agent.set_metrics(cpu_pct=42.5, tokens_per_min=1200, cost_usd=0.84)
    d = agent.trace("run-42", reasoning="the index is fresher than the web",
                    alternatives=[("web search", "slow")], outcome="search the index",
                    confidence=82)
    agent.trace("run-42", parent=d, outcome="read the first three hits", confidence=76)
    agent.end_execution("run-42", "completed")
    agent.stop()          # sends what is queued (up to `stop_timeout` seconds), then returns

The wire protocol is docs/api/openapi.yaml; its retry and limits sections are what this follows.
"""

from __future__ import annotations

import collections
import http.client
import json
import logging
import math
import random
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable, Iterable

__all__ = ["Agent", "AeiError", "CommandRejected", "RetryPolicy", "STATUSES"]

STATUSES = ("idle", "processing", "waiting", "error", "complete")
BATCH_MAX = 1000  # the server takes at most this many decisions per request

log = logging.getLogger("aei_agent")


class AeiError(Exception):
    """The server refused a request for what it was (a 4xx other than 429): not retried.

    `status` is the HTTP status, `code` and `message` the server's error, `field` the member at
    fault when it names one."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code, self.message, self.field = status, code, message, field


class CommandRejected(Exception):
    """Raised by an on_command handler that will not carry a command out: the command is
    acknowledged as `rejected` with {"reason": str(exception)} as its result."""


# Ack statuses the server knows; a command is acknowledged once, with one of them.
ACK_STATUSES = ("succeeded", "failed", "rejected")
# Commands whose acknowledgement is kept (to send again) once they were handled.
SEEN_COMMANDS = 1000


class RetryPolicy:
    """Exponential backoff with full jitter: the n-th retry waits a random time in
    [0, min(cap, base * 2**n)], or exactly what the server's Retry-After says. `sleep` and
    `random` may be replaced (tests record the waits instead of waiting)."""

    def __init__(self, base: float = 0.1, cap: float = 10.0, max_attempts: int | None = None,
                 sleep: Callable[[float], None] | None = None,
                 rand: Callable[[], float] = random.random):
        self.base, self.cap, self.max_attempts = base, cap, max_attempts
        self.rand = rand
        self.sleep = sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cap * 10)
        return self.rand() * min(self.cap, self.base * (2 ** attempt))


class _Retryable(Exception):
    def __init__(self, why: str, retry_after: float | None = None):
        super().__init__(why)
        self.retry_after = retry_after


class Agent:
    """An agent reporting to one AEI server. Thread-safe: any thread may set status and
    metrics, trace and end executions."""

    def __init__(self, server: str, token: str, agent_id: str, *, name: str | None = None,
                 heartbeat_interval: float = 5.0, batch_size: int = 100,
                 flush_interval: float = 0.2, queue_limit: int = 10000, timeout: float = 5.0,
                 stop_timeout: float = 10.0, retry: RetryPolicy | None = None,
                 on_command: Callable[[dict], Any] | None = None,
                 parent_agent_id: str | None = None, labels: dict[str, str] | None = None):
        if not 1 <= batch_size <= BATCH_MAX:
            raise ValueError(f"batch_size: expected 1 to {BATCH_MAX}, got {batch_size}")
        if queue_limit < 1:
            raise ValueError(f"queue_limit: expected at least 1, got {queue_limit}")
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval: expected a positive number of seconds")
        if not _is_id(agent_id):
            raise _bad("agent_id", _ID_EXPECTED, agent_id)
        url = server if "://" in server else "http://" + server
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"server: expected HOST:PORT or http://HOST:PORT, got {server!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._token, self.agent_id, self.name = token, agent_id, name
        self.heartbeat_interval, self.batch_size = heartbeat_interval, batch_size
        self.flush_interval, self.queue_limit = flush_interval, queue_limit
        self.timeout, self.stop_timeout = timeout, stop_timeout
        self.retry = retry or RetryPolicy()
        self.on_command = on_command
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._status = "idle"
        self._metrics: dict[str, float] = {}
        self._parent, self._children, self._labels = parent_agent_id, [], dict(labels or {})
        self._queue: collections.deque[dict] = collections.deque()
        self._in_flight = 0  # decisions taken from the queue and not yet acknowledged
        self._stopping = False
        self._stop_by: float | None = None  # monotonic deadline for the last sends
        self._threads: list[threading.Thread] = []
        # command_id -> (status, result) of its acknowledgement, None while being handled.
        self._seen_commands: collections.OrderedDict[str, tuple | None] = \
            collections.OrderedDict()
        self._paused = False
        self._terminated = False
        self._stats = {"heartbeats": 0, "heartbeat_failures": 0, "decisions_sent": 0,
                       "duplicates": 0, "batches": 0, "retries": 0, "dropped": 0,
                       "refused": 0, "commands": 0, "acks": 0, "ack_failures": 0}
        self._drop_logged_at = 0.0

    # ---- state reported in heartbeats ------------------------------------------------------

    def set_status(self, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
        with self._lock:
            self._status = status

    def set_metrics(self, **metrics: float) -> None:
        """cpu_pct, mem_pct, confidence (0-100), tokens_per_min, cost_usd (cumulative)."""
        known = {"cpu_pct", "mem_pct", "tokens_per_min", "cost_usd", "confidence"}
        unknown = set(metrics) - known
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; known: {sorted(known)}")
        with self._lock:
            self._metrics.update(metrics)

    def set_children(self, child_agent_ids: Iterable[str]) -> None:
        with self._lock:
            self._children = list(child_agent_ids)

    def stats(self) -> dict[str, int]:
        """Counts so far: `dropped` decisions (queue full), `refused` decisions (in batches
        the server refused, which it does whole), `queued` decisions not yet acknowledged, and
        heartbeats, batches, retries, commands and acknowledgements."""
        with self._lock:
            return dict(self._stats, queued=len(self._queue) + self._in_flight)

    # ---- control: pause, resume, terminate --------------------------------------------------

    @property
    def paused(self) -> bool:
        """True between a pause command and the next resume (or terminate)."""
        with self._lock:
            return self._paused

    @property
    def terminated(self) -> bool:
        """True once a terminate command arrived: the agent should end its work."""
        with self._lock:
            return self._terminated

    def wait_if_paused(self, timeout: float | None = None) -> bool:
        """Blocks while the agent is paused (up to `timeout` seconds when given). Returns False
        when the agent is terminated or stopping - the work should end - else True."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._paused and not self._terminated and not self._stopping:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._wake.wait(0.2 if left is None else min(left, 0.2))
            return not (self._terminated or self._stopping)

    def _obey(self, action: str | None) -> None:
        """The control state a command asks for, before the application's handler sees it."""
        with self._lock:
            if action == "pause":
                self._paused = True
            elif action == "resume":
                self._paused = self._terminated = False
            elif action == "terminate":
                self._terminated, self._paused = True, False
            self._wake.notify_all()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> "Agent":
        """Tries a first heartbeat at once - raising AeiError if the server refuses it (a bad
        token, say); a server that cannot be reached is only logged, and the heartbeat thread
        keeps trying - then starts the heartbeat and trace threads."""
        try:
            self.heartbeat(attempts=1)
        except ConnectionError as e:
            log.warning("aei_agent: first heartbeat failed, retrying in the background: %s", e)
        for target, name in ((self._heartbeat_loop, "aei-heartbeat"),
                             (self._trace_loop, "aei-traces")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stops the threads after sending what is queued, giving up after `timeout` seconds
        (default stop_timeout). Returns True when nothing was left unsent."""
        with self._lock:
            self._stopping = True
            self._stop_by = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
            self._wake.notify_all()
        for t in self._threads:
            t.join()
        self._threads.clear()
        with self._lock:
            left = len(self._queue) + self._in_flight
        if left:
            log.warning("aei_agent: stopped with %d decisions unsent", left)
        return left == 0

    def __enter__(self) -> "Agent":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- traces ----------------------------------------------------------------------------

    def trace(self, execution_id: str, *, parent: str | None = None, reasoning: Any = None,
              confidence: float | None = None, alternatives: Iterable[Any] = (),
              outcome: str | None = None, kind: str | None = None,
              labels: dict[str, str] | None = None, duration_ms: float | None = None,
              tokens: float | None = None, cost_usd: float | None = None,
              decision_id: str | None = None) -> str:
        """Queues one decision and returns its decision_id. `alternatives` holds
        (option, reason_rejected[, score]) tuples or dicts. Never blocks on the network.

        Raises ValueError naming the member at fault for a decision the server would refuse
        (the rules of POST /api/v0/traces: ids of 1-128 characters from A-Z a-z 0-9 . _ : -,
        confidence from 0 to 100, ...): the server refuses a batch whole, so one bad decision
        queued would take the good ones sent with it down too."""
        d: dict[str, Any] = {"decision_id": decision_id or str(uuid.uuid4()),
                             "execution_id": execution_id, "agent_id": self.agent_id,
                             "timestamp": _now_rfc3339()}
        if parent:
            d["parent_decision_id"] = parent
        alts = [_alternative(a) for a in alternatives]
        for key, value in (("reasoning_context", reasoning), ("confidence_score", confidence),
                           ("alternatives_considered", alts or None),
                           ("selected_outcome", outcome), ("kind", kind), ("labels", labels),
                           ("duration_ms", duration_ms), ("tokens", tokens),
                           ("cost_usd", cost_usd)):
            if value is not None:
                d[key] = value
        _check_decision(d)
        with self._lock:
            if len(self._queue) + self._in_flight >= self.queue_limit:
                self._stats["dropped"] += 1
                now = time.monotonic()
                if now - self._drop_logged_at >= 5:
                    self._drop_logged_at = now
                    log.warning("aei_agent: trace queue full (%d); dropped %d decisions so far",
                                self.queue_limit, self._stats["dropped"])
                return d["decision_id"]
            self._queue.append(d)
            if len(self._queue) >= self.batch_size:
                self._wake.notify_all()
        return d["decision_id"]

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until every queued decision is acknowledged; False after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._wake.notify_all()
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.05))
        return True

    def end_execution(self, execution_id: str, status: str, failure: Any = None) -> dict:
        """Ends an execution (completed, failed or abandoned) after sending its queued
        decisions; returns the execution. Retried like any request."""
        self.flush(self.stop_timeout)
        body: dict[str, Any] = {"status": status}
        if failure is not None:
            body["failure"] = failure
        path = "/api/v0/executions/" + urllib.parse.quote(execution_id, safe="")
        return self._request("PATCH", path, body)

    # ---- the wire --------------------------------------------------------------------------

    def heartbeat(self, attempts: int | None = None) -> dict:
        """Sends one heartbeat now (retried, up to `attempts` tries when given) and hands its
        commands to on_command."""
        with self._lock:
            hb: dict[str, Any] = {"agent_id": self.agent_id, "status": self._status,
                                  "metrics": dict(self._metrics),
                                  "parent_agent_id": self._parent,
                                  "child_agent_ids": list(self._children),
                                  "timestamp": _now_rfc3339(), "schema_version": "0"}
            if self.name:
                hb["name"] = self.name
            if self._labels:
                hb["labels"] = dict(self._labels)
        answer = self._request("POST", "/api/v0/heartbeats", hb, attempts)
        with self._lock:
            self._stats["heartbeats"] += 1
        for command in answer.get("commands") or []:
            self._deliver(command)
        return answer

    def _deliver(self, command: dict) -> None:
        """Passes a command on once and acknowledges it. The server hands a command out until
        it is acknowledged, so one seen before only has its acknowledgement sent again."""
        cid = command.get("command_id")
        if not isinstance(cid, str) or not cid:
            log.error("aei_agent: a command without a command_id: %s", json.dumps(command))
            return
        with self._lock:
            seen = cid in self._seen_commands
            ack = self._seen_commands.get(cid)
            if not seen:
                self._seen_commands[cid] = None
                self._stats["commands"] += 1
                while len(self._seen_commands) > SEEN_COMMANDS:
                    self._seen_commands.popitem(last=False)
        if seen and ack is None:
            return  # still being handled
        if not seen:
            ack = self._handle(command)
            with self._lock:
                if cid in self._seen_commands:
                    self._seen_commands[cid] = ack
        self._acknowledge(cid, *ack)

    def _handle(self, command: dict) -> tuple[str, Any]:
        """Obeys the control actions, runs on_command; (ack status, result) from how it went."""
        self._obey(command.get("action"))
        if not self.on_command:
            return "succeeded", None
        try:
            return "succeeded", self.on_command(command)
        except CommandRejected as e:
            return "rejected", {"reason": str(e)}
        except Exception as e:  # the agent's bug must not stop its heartbeats
            log.exception("aei_agent: on_command raised")
            return "failed", {"error": f"{type(e).__name__}: {e}"}

    def _acknowledge(self, command_id: str, status: str, result: Any) -> bool:
        """POST .../commands/{id}/ack, retried; the same status twice is harmless, so a failed
        acknowledgement is simply sent again when the next heartbeat hands the command out."""
        path = (f"/api/v0/agents/{urllib.parse.quote(self.agent_id, safe='')}/commands/"
                f"{urllib.parse.quote(command_id, safe='')}/ack")
        body: dict[str, Any] = {"status": status}
        if result is not None:
            body["result"] = result
        try:
            self._request("POST", path, body, self.retry.max_attempts or 5)
        except AeiError as e:
            if e.status == 400 and e.field == "result" and "result" in body:
                # A result the server will not keep (a real number, too big): say so instead.
                return self._acknowledge(command_id, status, {"unsendable_result": e.message})
            with self._lock:
                self._stats["ack_failures"] += 1
            log.error("aei_agent: the server refused the acknowledgement of %s: %s",
                      command_id, e)
            return False
        except ConnectionError as e:
            with self._lock:
                self._stats["ack_failures"] += 1
            log.warning("aei_agent: acknowledging %s failed, will retry: %s", command_id, e)
            return False
        with self._lock:
            self._stats["acks"] += 1
        return True

    def _request(self, method: str, path: str, body: Any, attempts: int | None = None) -> dict:
        """One request, retried per the policy; returns the answer's JSON."""
        data = json.dumps(body, separators=(",", ":")).encode()
        limit = attempts if attempts is not None else self.retry.max_attempts
        attempt = 0
        while True:
            try:
                return self._send(method, path, data)
            except _Retryable as e:
                if limit is not None and attempt + 1 >= limit:
                    raise ConnectionError(f"{method} {path}: gave up after {attempt + 1} "
                                          f"attempts: {e}") from e
                wait = self.retry.delay(attempt, e.retry_after)
                with self._lock:
                    self._stats["retries"] += 1
                log.debug("aei_agent: %s %s: %s; retrying in %.3f s", method, path, e, wait)
                if not self._backoff(wait):
                    raise ConnectionError(f"{method} {path}: stopping: {e}") from e
                attempt += 1

    def _backoff(self, wait: float) -> bool:
        """Waits `wait` seconds before a retry; False when the retry should not be made because
        the agent is stopping and the wait would end after the stop's deadline. The wait is on
        the condition stop() notifies, so a backoff begun before stop() is cut short rather
        than making stop() overrun its timeout."""
        if self.retry.sleep:
            with self._lock:
                if self._stopping and self._stop_by is not None \
                        and self._stop_by - time.monotonic() < wait:
                    return False
            self.retry.sleep(wait)
            return True
        end = time.monotonic() + wait
        with self._lock:
            while True:
                now = time.monotonic()
                if self._stopping and self._stop_by is not None and self._stop_by < end:
                    return False
                if now >= end:
                    return True
                self._wake.wait(end - now)

    def _send(self, method: str, path: str, data: bytes) -> dict:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request(method, path, body=data,
                         headers={"Authorization": "Bearer " + self._token,
                                  "Content-Type": "application/json",
                                  "User-Agent": "aei-agent-python/0.1"})
            r = conn.getresponse()
            raw = r.read()
            status = r.status
            retry_after = r.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as e:
            raise _Retryable(f"{type(e).__name__}: {e}") from e
        finally:
            conn.close()
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {}
        if 200 <= status < 300:
            return doc
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}", _seconds(retry_after))
        err = doc.get("error", {}) if isinstance(doc, dict) else {}
        raise AeiError(status, err.get("code", "http_error"),
                       err.get("message", raw[:200].decode("utf-8", "replace")), err.get("field"))

    # ---- threads ---------------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        next_at = time.monotonic() + self.heartbeat_interval
        while True:
            with self._lock:
                while not self._stopping and time.monotonic() < next_at:
                    self._wake.wait(next_at - time.monotonic())
                if self._stopping:
                    return
            next_at += self.heartbeat_interval
            try:
                self.heartbeat()
            except (AeiError, ConnectionError) as e:
                with self._lock:
                    self._stats["heartbeat_failures"] += 1
                log.warning("aei_agent: heartbeat failed: %s", e)

    def _trace_loop(self) -> None:
        while True:
            with self._lock:
                deadline = time.monotonic() + self.flush_interval
                while (not self._stopping and len(self._queue) < self.batch_size
                       and time.monotonic() < deadline):
                    self._wake.wait(deadline - time.monotonic())
                if not self._queue:
                    if self._stopping:
                        return
                    continue
                if self._stopping and self._stop_by and time.monotonic() >= self._stop_by:
                    return
                batch = [self._queue.popleft() for _ in range(min(self.batch_size,
                                                                  len(self._queue)))]
                self._in_flight = len(batch)
            ok = self._send_batch(batch)
            with self._lock:
                self._in_flight = 0
                if not ok:  # back to the front, in order: nothing is lost
                    self._queue.extendleft(reversed(batch))
                    if self._stopping:
                        return
                self._wake.notify_all()

    def _send_batch(self, batch: list[dict]) -> bool:
        try:
            answer = self._request("POST", "/api/v0/traces", batch)
        except ConnectionError as e:
            log.warning("aei_agent: sending %d decisions failed: %s", len(batch), e)
            return False
        except AeiError as e:
            # Refused for what it holds: retrying cannot help. Counted and logged, not kept.
            with self._lock:
                self._stats["refused"] += len(batch)
            log.error("aei_agent: the server refused %d decisions: %s", len(batch), e)
            return True
        with self._lock:
            self._stats["batches"] += 1
            self._stats["decisions_sent"] += int(answer.get("stored", 0))
            self._stats["duplicates"] += int(answer.get("duplicates", 0))
        return True


def _alternative(a: Any) -> dict:
    if isinstance(a, dict):
        return a
    option, reason, *rest = a
    alt = {"option": option}
    if reason is not None:
        alt["reason_rejected"] = reason
    if rest:
        alt["score"] = rest[0]
    return alt


# The limits aeid applies to a decision (src/server/trace.c, docs/api/openapi.yaml).
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
_ID_EXPECTED = "a string of 1-128 characters from A-Z a-z 0-9 . _ : -"
_ID_MAX, _KIND_MAX, _TEXT_MAX, _CONTEXT_MAX = 128, 64, 4096, 16384
_ALTERNATIVES_MAX, _LABELS_MAX, _LABEL_KEY_MAX, _LABEL_VALUE_MAX = 64, 64, 64, 256
_AMOUNT_MAX = 1e15


def _is_id(v: Any, longest: int = _ID_MAX) -> bool:
    return isinstance(v, str) and 1 <= len(v) <= longest and set(v) <= _ID_CHARS


def _is_number(v: Any) -> bool:
    # bool is an int in Python but true/false in JSON; NaN and infinities are no JSON at all.
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# trace()'s argument for each member whose wire name differs, so that errors name both.
_ARGUMENTS = {"parent_decision_id": "parent", "reasoning_context": "reasoning",
              "confidence_score": "confidence", "alternatives_considered": "alternatives",
              "selected_outcome": "outcome"}


def _bad(field: str, expected: str, got: Any) -> ValueError:
    member = field.partition("[")[0].partition(".")[0]
    if member in _ARGUMENTS:
        field = f"{_ARGUMENTS[member]} ({field})"
    return ValueError(f"{field}: expected {expected}, got {got!r:.80}")


def _check_id(d: dict, key: str) -> None:
    if key in d and not _is_id(d[key]):
        raise _bad(key, _ID_EXPECTED, d[key])


def _check_decision(d: dict) -> None:
    """Raises ValueError naming the first member that aeid would refuse in `d`."""
    for key in ("decision_id", "execution_id", "agent_id", "parent_decision_id"):
        _check_id(d, key)
    if d.get("parent_decision_id") == d["decision_id"]:
        raise _bad("parent_decision_id", "a decision other than decision_id itself",
                   d["parent_decision_id"])
    for key, top in (("confidence_score", 100), ("duration_ms", _AMOUNT_MAX),
                     ("tokens", _AMOUNT_MAX), ("cost_usd", _AMOUNT_MAX)):
        if key in d and not (_is_number(d[key]) and 0 <= d[key] <= top):
            raise _bad(key, f"a number from 0 to {top:g}", d[key])
    if "reasoning_context" in d:
        v = d["reasoning_context"]
        if not isinstance(v, (str, dict)):
            raise _bad("reasoning_context", "a string or a JSON object (a dict)", v)
        try:
            size = len(json.dumps(v, separators=(",", ":"), ensure_ascii=False,
                                  allow_nan=False).encode())
        except (TypeError, ValueError) as e:
            raise ValueError(f"reasoning (reasoning_context): expected a JSON value: {e}") from e
        if size > _CONTEXT_MAX:
            raise ValueError(f"reasoning (reasoning_context): expected at most {_CONTEXT_MAX} bytes of "
                             f"JSON, got {size}")
    if "selected_outcome" in d and not (isinstance(d["selected_outcome"], str)
                                        and len(d["selected_outcome"]) <= _TEXT_MAX):
        raise _bad("selected_outcome", f"a string of at most {_TEXT_MAX} characters",
                   d["selected_outcome"])
    if "kind" in d and not _is_id(d["kind"], _KIND_MAX):
        raise _bad("kind", "a name of 1-64 characters from A-Z a-z 0-9 . _ : - such as llm_call",
                   d["kind"])
    alts = d.get("alternatives_considered", [])
    if len(alts) > _ALTERNATIVES_MAX:
        raise ValueError(f"alternatives (alternatives_considered): expected at most {_ALTERNATIVES_MAX} "
                         f"alternatives, got {len(alts)}")
    for i, alt in enumerate(alts):
        field = f"alternatives_considered[{i}]"
        if not isinstance(alt, dict):
            raise _bad(field, "a dict {option, reason_rejected, score (optional)}", alt)
        if "option" not in alt:
            raise ValueError(f"alternatives ({field}.option): expected a string naming the "
                             "option, got none")
        for key, v in alt.items():
            if key in ("option", "reason_rejected"):
                if not (isinstance(v, str) and len(v) <= _TEXT_MAX):
                    raise _bad(f"{field}.{key}", f"a string of at most {_TEXT_MAX} characters", v)
            elif key == "score":
                if v is not None and not _is_number(v):
                    raise _bad(f"{field}.score", "a number, or None", v)
            else:
                raise _bad(f"{field}.{key}",
                           "no such member (an alternative has option, reason_rejected, score)",
                           v)
    labels = d.get("labels", {})
    if not isinstance(labels, dict) or len(labels) > _LABELS_MAX:
        raise _bad("labels", f"a dict of at most {_LABELS_MAX} string labels", labels)
    for k, v in labels.items():
        if not (isinstance(k, str) and 1 <= len(k) <= _LABEL_KEY_MAX):
            raise _bad("labels", f"label names of 1-{_LABEL_KEY_MAX} characters", k)
        if not (isinstance(v, str) and len(v) <= _LABEL_VALUE_MAX):
            raise _bad(f"labels.{k}", f"a string of at most {_LABEL_VALUE_MAX} characters", v)


def _now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def _seconds(retry_after: str | None) -> float | None:
    if retry_after is None:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        return None  # an HTTP date: fall back to backoff
