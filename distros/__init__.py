"""Distro, architecture and image-type definitions and the engine turning them into osbuild manifests."""
