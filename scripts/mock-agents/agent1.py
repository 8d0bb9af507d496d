#!/usr/bin/env python3
"""agent1.py - a mock researcher agent: python3 scripts/mock-agents/agent1.py --server HOST:PORT
(token from --token or AEI_TOKEN). See mock.py."""
import sys

from mock import run

if __name__ == "__main__":
    sys.exit(run("researcher", "researcher-1"))
