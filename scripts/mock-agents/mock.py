"""mock.py - the shared body of the mock agents agent1.py ... agent5.py.

Each mock agent is a real client of AEI through sdk/python/aei_agent.py: it sends a heartbeat every
5 seconds with CPU, memory, tokens per minute and cost that vary as it works, and runs executions
of 10-30 decisions whose reasoning reads like a model's (alternatives with why they were turned
down, a confidence that moves). It runs an execution when it receives an `execute` command, and
also, with --every SECONDS, on its own every so often. An `execute` command's execution runs under
the command's params.execution_id with params.prompt. The SDK acknowledges every command and
keeps the pause state: `pause` and `resume` are obeyed between decisions (the execution stops
mid-way and goes on), `terminate` ends the running execution as abandoned with the reason, and
executes are then rejected until a `resume`. SIGTERM ends the process.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk",
                                "python"))
import aei_agent  # noqa: E402

# What each role weighs at a step: (kind, reasoning, options with reasons, chosen).
STEPS = {
    "researcher": [
        ("llm_call", "The question needs figures newer than the context holds; a summary from "
         "memory would be stale.", [("answer from context", "stops two quarters ago"),
                                     ("ask the user", "the source is public")],
         "search for the latest report"),
        ("tool_selection", "Three sources match; the agency's own PDF is primary, the others "
         "quote it with rounding.", [("news article", "secondary, rounded figures"),
                                     ("blog summary", "no citations")],
         "read the agency PDF"),
        ("refinement", "Two tables disagree by 3%; the footnote says one excludes Q4 "
         "adjustments.", [("average the two", "hides the reason they differ")],
         "use the adjusted table and say why"),
    ],
    "coder": [
        ("planning", "The failing test points at date parsing; the stack trace ends in the "
         "timezone offset branch.", [("rewrite the parser", "too broad for one bug"),
                                      ("skip the test", "hides a real defect")],
         "fix the offset sign and add a case"),
        ("tool_selection", "Running the whole suite takes 4 minutes; the module's tests take 3 "
         "seconds and cover the change.", [("run everything", "slow feedback")],
         "run the module's tests first"),
        ("llm_call", "The fix passes; one more edge case (offsets of :30) is untested.",
         [("ship now", "the edge case is common in India")], "add the :30 case, then ship"),
    ],
    "planner": [
        ("planning", "The goal has four parts; two depend on the schema. Doing the schema first "
         "unblocks both.", [("start with the UI", "would be redone"),
                            ("do all in parallel", "conflicts in the schema")],
         "schema first, then API and UI in parallel"),
        ("refinement", "The estimate for the API is half the last similar task's; the risk is "
         "in auth.", [("keep the estimate", "history says it is low")],
         "double the API estimate"),
    ],
    "reviewer": [
        ("llm_call", "The change adds a retry without a bound; under an outage it would hammer "
         "the server.", [("approve", "unbounded retries"), ("reject outright", "the idea is good")],
         "request a capped backoff"),
        ("refinement", "The second version caps at 10 s with jitter and has a test of the "
         "timing.", [("ask for more tests", "the timing test covers it")], "approve"),
    ],
    "orchestrator": [
        ("planning", "The task splits into research and writing; the researcher needs 2-3 "
         "sources, the writer one draft.", [("do it all myself", "slower than delegating")],
         "spawn a researcher and a writer"),
        ("tool_selection", "The researcher finished; its sources are enough for the writer.",
         [("ask for more sources", "diminishing returns")], "hand the sources to the writer"),
        ("refinement", "The draft misses one of the three questions asked.",
         [("publish as is", "incomplete")], "send it back with the missing question"),
    ],
}


class Mock:
    def __init__(self, role: str, agent_id: str, args: argparse.Namespace):
        self.role, self.rng = role, random.Random(f"{agent_id}-{os.getpid()}")
        self.stopping = threading.Event()
        self.wanted = threading.Event()  # an execute command or the timer asked for a run
        self.lock = threading.Lock()
        self.runs: collections.deque[tuple[str | None, str | None]] = collections.deque()
        self.cost = 0.0
        # The status last reported, and the one a pause interrupted: resume goes back to it.
        self.status, self.before_pause = "idle", "idle"
        self.agent = aei_agent.Agent(args.server, args.token, agent_id, name=role.title(),
                                     heartbeat_interval=args.heartbeat,
                                     on_command=self.on_command)
        self.every = args.every
        self.think = args.think
        self.children = []

    def on_command(self, command: dict) -> dict | None:
        """Runs on the SDK's heartbeat thread, after the SDK took note of pause, resume and
        terminate; what it returns is the acknowledgement's result."""
        action = command.get("action")
        params = command.get("params") or {}
        print(f"{self.agent.agent_id}: command {command.get('command_id')} {action}", flush=True)
        if action == "execute":
            if self.agent.terminated:
                raise aei_agent.CommandRejected("terminated: resume the agent first")
            execution = params.get("execution_id")
            with self.lock:
                self.runs.append((execution, params.get("prompt")))
            self.wanted.set()
            return {"execution_id": execution, "accepted": True}
        if action == "pause":
            with self.lock:
                if self.status != "waiting":
                    self.before_pause = self.status
            self.set_status("waiting")
        elif action in ("resume", "terminate") and self.status == "waiting":
            # A paused execution reports processing again by itself, but an agent paused while
            # idle has nothing running to do it; terminate leaves it idle too.
            self.set_status(self.before_pause if action == "resume" else "idle")
        return None

    def set_status(self, status: str) -> None:
        with self.lock:
            self.status = status
            self.agent.set_status(status)

    def vary(self, busy: bool) -> None:
        tpm = self.rng.uniform(1500, 6000) if busy else self.rng.uniform(0, 50)
        self.cost += tpm / 60 * 5 * 0.000002 + (0.0005 if busy else 0)
        self.agent.set_metrics(cpu_pct=round(self.rng.uniform(40, 95) if busy else
                                             self.rng.uniform(0.5, 5), 1),
                               mem_pct=round(self.rng.uniform(20, 70), 1),
                               tokens_per_min=round(tpm), cost_usd=round(self.cost, 5),
                               confidence=round(self.rng.uniform(60, 95)))

    def run_execution(self, execution: str | None, prompt: str | None) -> None:
        execution = execution or f"{self.agent.agent_id}-{uuid.uuid4().hex[:8]}"
        self.set_status("processing")
        print(f"{self.agent.agent_id}: execution {execution} started", flush=True)
        n = self.rng.randint(10, 30)
        confidence = self.rng.uniform(50, 70)
        ids: list[str] = []
        for i in range(n):
            if self.agent.paused:
                print(f"{self.agent.agent_id}: paused after {i} decisions", flush=True)
                self.set_status("waiting")
            while not self.stopping.is_set() and self.agent.paused:
                self.agent.wait_if_paused(0.2)
            if self.stopping.is_set() or self.agent.terminated:
                why = "stopping" if self.stopping.is_set() else "terminated"
                self.agent.end_execution(execution, "abandoned",
                                         {"reason": why, "after_decisions": i})
                self.set_status("idle")
                print(f"{self.agent.agent_id}: execution {execution} abandoned ({why})",
                      flush=True)
                return
            self.set_status("processing")
            kind, reasoning, options, chosen = self.rng.choice(STEPS[self.role])
            if i == 0 and prompt:
                reasoning = f"Asked: {prompt}. {reasoning}"
            confidence = min(99, max(5, confidence + self.rng.uniform(-8, 12)))
            parent = ids[self.rng.randrange(len(ids))] if ids and self.rng.random() < 0.8 else (
                ids[0] if ids else None)
            ids.append(self.agent.trace(
                execution, parent=parent, kind=kind, reasoning=reasoning,
                confidence=round(confidence, 1),
                alternatives=[(o, r, round(self.rng.random(), 2)) for o, r in options],
                outcome=chosen, duration_ms=self.rng.randint(40, 3000),
                tokens=self.rng.randint(100, 4000), cost_usd=round(self.rng.uniform(0, 0.01), 5)))
            self.vary(True)
            time.sleep(self.rng.uniform(0.5 * self.think, 1.5 * self.think) if self.think
                       else self.rng.uniform(0.05, 0.4))
        self.agent.end_execution(execution, "completed")
        self.set_status("idle")
        print(f"{self.agent.agent_id}: execution {execution} completed with {n} decisions",
              flush=True)

    def main(self) -> int:
        if self.role == "orchestrator":
            self.children = [f"{self.agent.agent_id}-child-{k}" for k in (1, 2)]
            self.agent.set_children(self.children)
        self.vary(False)
        self.agent.start()
        print(f"{self.agent.agent_id}: {self.role} reporting to {self.agent._host}:"
              f"{self.agent._port}", flush=True)
        next_auto = time.monotonic() + (self.every or 0)
        while not self.stopping.is_set():
            if self.every and time.monotonic() >= next_auto and not self.agent.terminated:
                self.wanted.set()
                next_auto = time.monotonic() + self.every
            if self.wanted.wait(0.5):
                self.wanted.clear()
                with self.lock:
                    runs = list(self.runs) or [(None, None)]
                    self.runs.clear()
                for execution, prompt in runs:
                    if not self.stopping.is_set():
                        self.run_execution(execution, prompt)
            elif not self.agent.paused:
                self.vary(False)
        self.agent.stop()
        return 0


def run(role: str, default_id: str) -> int:
    p = argparse.ArgumentParser(description=f"A mock {role} agent reporting to an AEI server.")
    p.add_argument("--server", default="127.0.0.1:3000", help="HOST:PORT of aeid's HTTP API")
    p.add_argument("--token", default=os.environ.get("AEI_TOKEN"),
                   help="bearer token (default: $AEI_TOKEN)")
    p.add_argument("--id", default=default_id, help=f"agent id (default {default_id})")
    p.add_argument("--every", type=float, default=0,
                   help="also run an execution on its own every SECONDS (default: only on "
                        "an execute command)")
    p.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats")
    p.add_argument("--think", type=float, default=0,
                   help="mean seconds between decisions (default: 0.05 to 0.4 at random)")
    args = p.parse_args()
    if args.heartbeat <= 0 or args.think < 0 or args.every < 0:
        p.error("--heartbeat must be positive, --think and --every not negative")
    if not args.token:
        p.error("no token: pass --token or set AEI_TOKEN")
    mock = Mock(role, args.id, args)
    signal.signal(signal.SIGTERM, lambda *_: mock.stopping.set())
    try:
        return mock.main()
    except KeyboardInterrupt:
        mock.stopping.set()
        mock.agent.stop()
        return 0
    except aei_agent.AeiError as e:
        print(f"{args.id}: the server refused: {e}", file=sys.stderr)
        return 1
