"""Upload targets: each moves a finished image to where users run it."""
