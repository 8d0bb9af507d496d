#!/usr/bin/env python3
"""agent2.py - a mock coder agent: python3 scripts/mock-agents/agent2.py --server HOST:PORT
(token from --token or AEI_TOKEN). See mock.py."""
import sys

from mock import run

if __name__ == "__main__":
    sys.exit(run("coder", "coder-1"))
