"""Route modules of the Weldr API; each exposes a Flask `Blueprint` named `bp` (see `app.create_app`)."""
