#!/usr/bin/env python3
"""agent3.py - a mock planner agent: python3 scripts/mock-agents/agent3.py --server HOST:PORT
(token from --token or AEI_TOKEN). See mock.py."""
import sys

from mock import run

if __name__ == "__main__":
    sys.exit(run("planner", "planner-1"))
