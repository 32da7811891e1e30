"""Shared by all tests: makes helper modules in tests/ (fake_sweep) importable."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
