"""The Weldr API service: a Flask application speaking osbuild-composer's HTTP API."""
