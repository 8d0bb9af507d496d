#!/usr/bin/env python3
"""agent4.py - a mock reviewer agent: python3 scripts/mock-agents/agent4.py --server HOST:PORT
(token from --token or AEI_TOKEN). See mock.py."""
import sys

from mock import run

if __name__ == "__main__":
    sys.exit(run("reviewer", "reviewer-1"))
