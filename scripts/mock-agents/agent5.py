#!/usr/bin/env python3
"""agent5.py - a mock orchestrator agent: python3 scripts/mock-agents/agent5.py --server HOST:PORT
(token from --token or AEI_TOKEN). See mock.py."""
import sys

from mock import run

if __name__ == "__main__":
    sys.exit(run("orchestrator", "orchestrator-1"))
