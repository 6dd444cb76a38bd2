"""Test suite; a package so that tests/<area>/ never shadows the project package of the same name."""
